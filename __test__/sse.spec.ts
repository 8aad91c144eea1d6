/** Server-Sent Events against real clients: the `eventsource` package and headless Chromium. */
import test from 'ava'
import { EventSource } from 'eventsource'
import { sse } from '../index.js'
import { deferred, rawExchange, parseRaw, serve, within, dechunk, launchChromium } from './helpers.js'

interface Received {
  type: string
  data: string
  id: string
}

/** Events 1..n of a small in-memory history, used for live events and for replay. */
const history = Array.from({ length: 6 }, (_, i) => ({ id: String(i + 1), event: i % 2 ? 'odd' : 'even', data: { n: i + 1 } }))

test('the eventsource client receives ids, event types and retry, and resumes after Last-Event-ID', async (t) => {
  let connections = 0
  const lastIds: Array<string | undefined> = []
  const { app, url } = await serve((app) => {
    app.get('/events', (req) => {
      connections++
      lastIds.push(req.lastEventId)
      const first = connections === 1
      return sse(
        (async function* () {
          if (first) {
            for (const e of history.slice(0, 3)) yield e
            return // the server ends the stream: the client reconnects after `retry`
          }
          await new Promise((r) => req.signal.addEventListener('abort', r))
        })(),
        { retry: 50, replay: (last) => history.slice(Number(last)) },
      )
    })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const got: Received[] = []
  const all = deferred()
  const es = new EventSource(url + '/events')
  t.teardown(() => es.close())
  for (const type of ['even', 'odd']) {
    es.addEventListener(type, (e) => {
      got.push({ type, data: e.data, id: e.lastEventId })
      if (got.length === 6) all.resolve()
    })
  }
  await within(all.promise, 10_000, 'six events across a reconnect')
  t.deepEqual(
    got.map((e) => [e.id, e.type, JSON.parse(e.data).n]),
    history.map((e) => [e.id, e.event, e.data.n]),
  )
  t.deepEqual(lastIds.slice(0, 2), [undefined, '3'])
})

test('the stream has the SSE headers and multi-line data is split into data lines', async (t) => {
  const { app, port } = await serve((app) => {
    app.get('/e', () => sse(['line one\nline two\r\nline three', { comment: 'hi' }, { event: 'x', data: 'y' }, { n: 1 }], { heartbeat: 0 }))
  })
  t.teardown(() => app.close())
  const raw = await rawExchange(port, 'GET /e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  const { headers, body } = parseRaw(raw)
  t.is(headers['content-type'], 'text/event-stream; charset=utf-8')
  t.is(headers['cache-control'], 'no-cache, no-transform')
  t.is(headers['x-accel-buffering'], 'no')
  t.is(
    Buffer.concat(dechunk(body).chunks).toString(),
    'data: line one\ndata: line two\ndata: line three\n\n: hi\n\nevent: x\ndata: y\n\ndata: {"n":1}\n\n',
  )
})

test('a request without Accept: text/event-stream still gets the stream', async (t) => {
  const { app, url } = await serve((app) => app.get('/e', () => sse(['a'], { heartbeat: 0 })))
  t.teardown(() => app.close())
  const res = await fetch(url + '/e', { headers: { accept: 'text/plain' } })
  t.is(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  t.is(await res.text(), 'data: a\n\n')
})

test('a heartbeat comment arrives while the source is idle', async (t) => {
  const { app, url } = await serve((app) =>
    app.get('/quiet', (req) =>
      sse(
        (async function* () {
          yield 'hello'
          await new Promise((r) => req.signal.addEventListener('abort', r))
        })(),
        { heartbeat: 100 },
      ),
    ),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const ctrl = new AbortController()
  t.teardown(() => ctrl.abort())
  const res = await fetch(url + '/quiet', { signal: ctrl.signal })
  const reader = res.body!.getReader()
  let text = ''
  while (!text.includes(':\n\n')) {
    const { value, done } = await within(reader.read(), 5000, 'heartbeat')
    if (done) break
    text += Buffer.from(value).toString()
  }
  t.true(text.startsWith('data: hello\n\n'))
  t.true(text.includes(':\n\n'))
})

test('CR or LF in an id or event type is rejected, never injected', async (t) => {
  const errors: unknown[] = []
  const { app, port } = await serve(
    (app) => {
      app.get('/inject', () => sse([{ data: 'ok' }, { id: '1\ndata: injected', data: 'x' }], { heartbeat: 0 }))
      app.get('/inject-event', () => sse([{ event: 'a\rb', data: 'x' }], { heartbeat: 0 }))
    },
    { onError: (e) => errors.push(e) },
  )
  t.teardown(() => app.close())
  for (const path of ['/inject', '/inject-event']) {
    const raw = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
    const { chunks, terminated } = dechunk(parseRaw(raw).body)
    const text = Buffer.concat(chunks).toString()
    t.false(text.includes('injected'))
    t.false(terminated, 'the stream is cut as an error')
  }
  t.true(errors.length >= 2)
  t.true(errors.every((e) => (e as { code?: string }).code === 'CZ_SSE_FIELD'))
  t.throws(() => sse([], { retry: -1 }))
})

test('headless Chromium receives events through EventSource', async (t) => {
  const browser = await launchChromium(t)
  if (!browser) return
  const { app, url } = await serve((app) => {
    app.get('/', () =>
      new Response(
        `<!doctype html><body><script>
          window.received = []
          const es = new EventSource('/events')
          es.addEventListener('tick', (e) => { window.received.push(e.lastEventId + ':' + e.data); if (window.received.length === 3) es.close() })
        </script></body>`,
        { headers: { 'content-type': 'text/html' } },
      ),
    )
    app.get('/events', () =>
      sse(
        (async function* () {
          for (let i = 1; i <= 3; i++) {
            yield { id: i, event: 'tick', data: `t${i}` }
            await new Promise((r) => setTimeout(r, 20))
          }
          await new Promise((r) => setTimeout(r, 60_000))
        })(),
      ),
    )
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const page = await browser.newPage()
  await page.goto(url + '/')
  await page.waitForFunction(() => (globalThis as unknown as { received: string[] }).received.length === 3, undefined, { timeout: 15_000 })
  const received = await page.evaluate(() => (globalThis as unknown as { received: string[] }).received)
  t.deepEqual(received, ['1:t1', '2:t2', '3:t3'])
})
