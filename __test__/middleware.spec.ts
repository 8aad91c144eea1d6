/** Middleware around streams: headers before the first byte, replacing responses, seeing the end. */
import test from 'ava'
import { sse, StreamingResponse } from '../index.js'
import type { FinishInfo } from '../index.js'
import { deferred, serve, within } from './helpers.js'

test('middleware sees the end of a stream with its bytes and duration', async (t) => {
  const finished = deferred<FinishInfo>()
  const { app, url } = await serve((app) => {
    app.use(async (req, next) => {
      req.onFinish((info) => finished.resolve(info))
      return next()
    })
    app.get('/s', async function* () {
      yield 'abc'
      yield 'defg'
    })
  })
  t.teardown(() => app.close())
  t.is(await (await fetch(url + '/s')).text(), 'abcdefg')
  const info = await within(finished.promise, 5000, 'onFinish')
  t.is(info.status, 200)
  t.is(info.bytes, 7)
  t.is(info.chunks, 2)
  t.false(info.aborted)
  t.true(info.duration >= 0)
})

test('middleware can set headers on a streaming response before its first byte', async (t) => {
  const { app, url } = await serve((app) => {
    app.use(async (req, next) => {
      req.setHeader('x-request-id', 'r-1')
      const res = await next()
      if (res instanceof StreamingResponse) res.options.headers!['x-stream'] = 'yes'
      return res
    })
    app.get('/events', () => sse(['one'], { heartbeat: 0 }))
    app.get('/plain', () => 'plain')
  })
  t.teardown(() => app.close())
  const res = await fetch(url + '/events')
  t.is(res.headers.get('x-request-id'), 'r-1')
  t.is(res.headers.get('x-stream'), 'yes')
  t.is(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  t.is(await res.text(), 'data: one\n\n')
  const plain = await fetch(url + '/plain')
  t.is(plain.headers.get('x-request-id'), 'r-1')
})

test('middleware can replace a response and report plain responses as finished', async (t) => {
  const seen: FinishInfo[] = []
  const { app, url } = await serve((app) => {
    app.use(async (req, next) => {
      req.onFinish((i) => seen.push(i))
      const res = await next()
      return req.query.has('wrap') ? { wrapped: res } : res
    })
    app.get('/v', () => 'value')
  })
  t.teardown(() => app.close())
  t.deepEqual(await (await fetch(url + '/v?wrap')).json(), { wrapped: 'value' })
  t.is(await (await fetch(url + '/v')).text(), 'value')
  t.is(seen.length, 2)
  t.is(seen[1]!.status, 200)
  t.is(seen[1]!.bytes, 5)
})
