/** Per-route options: body size and timeouts, stream buffer, compression, maxStreams (503) and stream lifetime, each answered and counted. */
import test from 'ava'
import net from 'node:net'
import http from 'node:http'
import { Catzilla, sse, StreamingResponse } from '../index.js'
import { deferred, openRaw, parseRaw, rawExchange, serve, within } from './helpers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test('an upload route takes a large body while the rest of the app keeps its small limit', async (t) => {
  const { app, url } = await serve(
    (app) => {
      app.post('/upload', { maxBodySize: 1 << 20 }, async (req) => (await req.bytes()).byteLength)
      app.post('/small', async (req) => (await req.bytes()).byteLength)
    },
    { limits: { maxBodySize: 1024 } },
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const big = new Uint8Array(300 * 1024)
  const up = await fetch(`${url}/upload`, { method: 'POST', body: big })
  t.is(up.status, 200)
  t.is(await up.text(), String(big.length))
  const small = await fetch(`${url}/small`, { method: 'POST', body: new Uint8Array(2048) })
  t.is(small.status, 413)
  await small.text()
  const over = await fetch(`${url}/upload`, { method: 'POST', body: new Uint8Array((1 << 20) + 1) }).catch(() => undefined)
  if (over) {
    t.is(over.status, 413, 'the route limit is a limit too')
    await over.text()
  }
})

test('a route body timeout answers 408 while the app default would wait', async (t) => {
  const { app, port } = await serve((app) => app.post('/slow', { timeouts: { body: 200 } }, async (req) => (await req.bytes()).byteLength), {
    timeouts: { body: 60_000 },
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const raw = await rawExchange(port, 'POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n' + 'a'.repeat(70_000), 3000)
  t.is(parseRaw(raw).statusLine, 'HTTP/1.1 408 Request Timeout')
})

test('maxStreams answers 503 with Retry-After beyond the limit, before the handler runs, and admits again once a stream ends', async (t) => {
  let handlerRuns = 0
  const { app, url, port } = await serve((app) =>
    app.get('/events', { maxStreams: 2 }, (req) => {
      handlerRuns++
      return sse(
        (async function* () {
          while (!req.signal.aborted) {
            yield { data: 'tick' }
            await sleep(50)
          }
        })(),
      )
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const a = openRaw(port, '/events')
  const b = openRaw(port, '/events')
  t.teardown(() => {
    a.destroy()
    b.destroy()
  })
  for (let i = 0; i < 100 && app.streams().length < 2; i++) await sleep(10)
  const third = await fetch(`${url}/events`)
  t.is(third.status, 503)
  t.is(third.headers.get('retry-after'), '1')
  t.regex(await third.text(), /maxStreams/)
  t.is(handlerRuns, 2)
  t.is(app.stats().routeFull, 1)
  a.destroy()
  for (let i = 0; i < 100 && app.streams().length > 1; i++) await sleep(10)
  await sleep(50)
  const again = await fetch(`${url}/events`)
  t.is(again.status, 200)
  await again.body!.cancel()
})

test('streamLifetime cuts a stream that runs too long; its producer sees the close', async (t) => {
  const done = deferred<string>()
  const { app, url } = await serve((app) =>
    app.get('/short', { timeouts: { streamLifetime: 300 } }, () =>
      new StreamingResponse(
        (async function* () {
          try {
            for (;;) {
              yield 'tick\n'
              await sleep(20)
            }
          } finally {
            done.resolve('finally')
          }
        })(),
      ),
    ),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const started = Date.now()
  const res = await fetch(`${url}/short`)
  const body = await res.text().then(
    () => 'ended',
    () => 'cut',
  )
  t.is(body, 'cut', 'the client sees a truncated body, not a clean end')
  t.is(await within(done.promise, 3000, 'the generator finally'), 'finally')
  t.true(Date.now() - started >= 250)
  t.is(app.stats().streamsExpired, 1)
  t.regex(app.metricsText(), /catzilla_limit_hits_total\{kind="stream_lifetime"\} 1/)
})

test('a route streamIdle cuts a client that stops reading sooner than the app default', async (t) => {
  const { app, port } = await serve(
    (app) =>
      app.get('/firehose', { timeouts: { streamIdle: 300 }, bufferSize: 16 * 1024 }, () =>
        new StreamingResponse(
          (function* () {
            for (;;) yield 'x'.repeat(16 * 1024)
          })(),
        ),
      ),
    { timeouts: { streamIdle: 60_000 } },
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const sock = net.connect(port, '127.0.0.1')
  sock.write('GET /firehose HTTP/1.1\r\nHost: x\r\n\r\n')
  sock.pause()
  for (let i = 0; i < 100 && app.streams().length === 0; i++) await sleep(10)
  t.is(app.streams()[0]?.bufferSize, 16 * 1024, 'the route buffer size')
  t.teardown(() => sock.destroy())
  const cut = (async () => {
    while (app.stats().stalledCut === 0) await sleep(20)
  })()
  await within(cut, 10_000, 'the stalled connection cut')
  for (let i = 0; i < 100 && app.streams().length > 0; i++) await sleep(10)
  t.is(app.streams().length, 0, 'the stream ended with its connection')
})

test('a route can turn compression on when the app has it off', async (t) => {
  const { app, port } = await serve((app) => {
    app.get('/zipped', { compress: true }, () => ({ rows: Array.from({ length: 200 }, (_, i) => `row ${i}`) }))
    app.get('/plain', () => ({ rows: Array.from({ length: 200 }, (_, i) => `row ${i}`) }))
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const get = (path: string) =>
    new Promise<http.IncomingHttpHeaders>((resolve, reject) =>
      http.get({ host: '127.0.0.1', port, path, headers: { 'accept-encoding': 'gzip' } }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.headers))
      }).on('error', reject),
    )
  t.is((await get('/zipped'))['content-encoding'], 'gzip')
  t.is((await get('/plain'))['content-encoding'], undefined)
})

test('route options are checked when the route is added', (t) => {
  const app = new Catzilla()
  t.throws(() => app.get('/a', { maxStreams: 0 }, () => 'x'), { instanceOf: RangeError, message: /maxStreams/ })
  t.throws(() => app.get('/b', { timeouts: { streamLifetime: -1 } }, () => 'x'), { instanceOf: RangeError })
  t.throws(() => app.get('/c', { bufferSize: 1.5 }, () => 'x'), { instanceOf: RangeError })
})
