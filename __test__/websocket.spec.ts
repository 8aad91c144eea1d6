/** WebSockets against real clients: the `ws` package, raw sockets and headless Chromium. */
import test from 'ava'
import net from 'node:net'
import WebSocket from 'ws'
import { HTTPError } from '../index.js'
import type { WebSocket as CzSocket } from '../index.js'
import { closed, connect, deferred, launchChromium, next, rawExchange, serve, sleep, within } from './helpers.js'

const wsUrl = (port: number, path: string) => `ws://127.0.0.1:${port}${path}`

test('an echo route returns text as text and binary as binary, in order', async (t) => {
  const { app, port } = await serve((app) => app.ws('/echo', { message: (ws, data) => void ws.send(data) }))
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await connect(wsUrl(port, '/echo'))
  const got = next(c, 3)
  c.send('héllo')
  c.send(Buffer.from([0, 1, 255]))
  c.send('x'.repeat(100_000))
  const [a, b, big] = await got
  t.deepEqual(a, { data: 'héllo', binary: false })
  t.deepEqual(b, { data: '0001ff', binary: true })
  t.is(big!.data.length, 100_000)
  c.close()
})

test('hooks run in order with data from upgrade and params from the path', async (t) => {
  const events: string[] = []
  const done = deferred()
  const { app, port } = await serve((app) =>
    app.ws('/rooms/:room', {
      upgrade: (req) => ({ user: req.query.get('user') ?? 'nobody' }),
      open: (ws: CzSocket<{ user: string }>) => {
        events.push(`open ${ws.data.user} ${ws.params.room}`)
        ws.send(`welcome ${ws.data.user}`)
      },
      message: (_ws, data, isBinary) => void events.push(`message ${String(data)} ${isBinary}`),
      close: (ws, code, reason) => {
        events.push(`close ${code} ${reason} ${ws.closed}`)
        done.resolve()
      },
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  // Listen before the handshake completes: the welcome may arrive with the 101.
  const c = new WebSocket(wsUrl(port, '/rooms/blue?user=ann'))
  const welcome = next(c)
  await within(new Promise((r) => c.once('open', r)), 5000, 'open')
  t.deepEqual(await welcome, [{ data: 'welcome ann', binary: false }])
  c.send('hi')
  await sleep(50)
  c.close(4000, 'done')
  await within(done.promise, 5000, 'close hook')
  t.deepEqual(events, ['open ann blue', 'message hi false', 'close 4000 done true'])
})

test('upgrade can refuse with an HTTPError status', async (t) => {
  const { app, port } = await serve((app) =>
    app.ws('/private', {
      upgrade: (req) => {
        if (req.header('authorization') !== 'Bearer ok') throw new HTTPError(401, 'no token', { headers: { 'www-authenticate': 'Bearer' } })
      },
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const c = new WebSocket(wsUrl(port, '/private'))
  const res = await within(new Promise<{ status: number; auth: string | undefined }>((resolve) => c.on('unexpected-response', (_req, r) => resolve({ status: r.statusCode!, auth: r.headers['www-authenticate'] as string }))), 5000, 'refusal')
  t.deepEqual(res, { status: 401, auth: 'Bearer' })
  const ok = await connect(wsUrl(port, '/private'), undefined, { headers: { authorization: 'Bearer ok' } })
  t.is(ok.readyState, WebSocket.OPEN)
  ok.close()
})

test('a plain GET on a WebSocket route gets 426 and a broken handshake gets 400', async (t) => {
  const { app, url, port } = await serve((app) => app.ws('/ws', {}))
  t.teardown(() => app.close({ timeout: 100 }))
  const plain = await fetch(`${url}/ws`)
  t.is(plain.status, 426)
  t.is(plain.headers.get('upgrade'), 'websocket')
  const raw = await rawExchange(port, 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n', 2000)
  t.regex(raw.toString(), /^HTTP\/1\.1 400 /)
  t.true(app.stats().wsRejected >= 1)
})

test('the first offered subprotocol is echoed unless upgrade picks one', async (t) => {
  const { app, port } = await serve((app) => {
    app.ws('/auto', {})
    app.ws('/pick', { upgrade: (req) => void req.setHeader('sec-websocket-protocol', 'chat.v2') })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const a = await connect(wsUrl(port, '/auto'), ['token.abc', 'chat.v2'])
  t.is(a.protocol, 'token.abc')
  const b = await connect(wsUrl(port, '/pick'), ['token.abc', 'chat.v2'])
  t.is(b.protocol, 'chat.v2')
  a.close()
  b.close()
})

test('a message over maxPayload closes the socket with 1009', async (t) => {
  const { app, port } = await serve((app) => app.ws('/small', { maxPayload: 1024, message: (ws, d) => void ws.send(d) }))
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await connect(wsUrl(port, '/small'))
  const end = closed(c)
  c.send('y'.repeat(2048))
  t.is((await end).code, 1009)
})

test('server close sends the code after queued messages, and close() fires the hook once', async (t) => {
  let hookCalls = 0
  const { app, port } = await serve((app) =>
    app.ws('/bye', {
      open: (ws) => {
        for (let i = 0; i < 100; i++) ws.send(`m${i}`)
        ws.close(4321, 'see you')
        t.is(ws.send('late'), 'dropped')
      },
      close: () => void hookCalls++,
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const c = new WebSocket(wsUrl(port, '/bye'))
  const got: string[] = []
  c.on('message', (d) => got.push(d.toString()))
  const end = await closed(c)
  t.deepEqual(end, { code: 4321, reason: 'see you' })
  t.is(got.length, 100)
  t.is(got[99], 'm99')
  await sleep(50)
  t.is(hookCalls, 1)
})

test('a client that never reads makes send answer queued, then dropped, with memory bounded', async (t) => {
  const socket = deferred<CzSocket>()
  let drained = deferred<number>()
  const { app, port } = await serve((app) =>
    app.ws('/flood', {
      maxBackpressure: 256 * 1024,
      open: (ws) => socket.resolve(ws),
      drain: (ws) => drained.resolve(ws.bufferedAmount),
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  // A raw client: handshake, then stop reading.
  const sock = net.connect(port, '127.0.0.1')
  sock.write('GET /flood HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  await within(new Promise((r) => sock.once('data', r)), 5000, 'handshake')
  sock.pause()
  const ws = await socket.promise
  const chunk = 'z'.repeat(16 * 1024)
  const results = new Map<string, number>()
  for (let i = 0; i < 2000; i++) {
    const r = ws.send(chunk)
    results.set(r, (results.get(r) ?? 0) + 1)
    if (i % 50 === 0) await sleep(1) // let the writer fill the kernel buffers
  }
  t.true((results.get('sent') ?? 0) > 0)
  t.true((results.get('dropped') ?? 0) > 0, `results ${JSON.stringify([...results])}`)
  t.true(ws.bufferedAmount <= 256 * 1024 + chunk.length, `buffered ${ws.bufferedAmount}`)
  t.true(app.stats().wsDropped > 0)
  // Reading again drains the queue and fires `drain`.
  drained = deferred<number>()
  sock.resume()
  sock.on('data', () => {})
  const atDrain = await within(drained.promise, 10_000, 'drain hook')
  t.true(atDrain <= 128 * 1024, `buffered at drain ${atDrain}`)
  sock.destroy()
})

test('a client that disappears fires close with 1006 and leaves its topics', async (t) => {
  const gone = deferred<number>()
  const { app, port } = await serve((app) =>
    app.ws('/sub', { open: (ws) => void ws.subscribe('t'), close: (_ws, code) => gone.resolve(code) }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await connect(wsUrl(port, '/sub'))
  await sleep(50)
  t.is(app.subscribers('t'), 1)
  c.terminate()
  t.is(await within(gone.promise, 5000, 'close hook'), 1006)
  t.is(app.subscribers('t'), 0)
  t.is(app.publish('t', 'anyone?'), 0)
})

test('a throwing message hook closes the socket with 1011 and the server keeps serving', async (t) => {
  const { app, port } = await serve((app) =>
    app.ws('/boom', {
      message: () => {
        throw new Error('boom')
      },
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await connect(wsUrl(port, '/boom'))
  const end = closed(c)
  c.send('x')
  t.is((await end).code, 1011)
  const again = await connect(wsUrl(port, '/boom'))
  t.is(again.readyState, WebSocket.OPEN)
  again.close()
})

test('app.close() closes open sockets with 1001 going away', async (t) => {
  const { app, port } = await serve((app) => app.ws('/live', {}))
  const c = await connect(wsUrl(port, '/live'))
  const end = closed(c)
  await app.close({ timeout: 2000 })
  t.is((await end).code, 1001)
})

test('a handler that lags behind a fast sender still receives every message', async (t) => {
  let received = 0
  const { app, port } = await serve((app) =>
    app.ws('/slow', {
      maxPayload: 64 * 1024,
      message: () => {
        received++
        // A synchronous handler that costs time: the Rust reader must wait for it.
        const until = Date.now() + 1
        while (Date.now() < until);
      },
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await connect(wsUrl(port, '/slow'))
  const payload = Buffer.alloc(32 * 1024, 1)
  for (let i = 0; i < 400; i++) c.send(payload)
  await within(
    (async () => {
      while (received < 400) await sleep(20)
    })(),
    20_000,
    'all messages',
  )
  t.is(received, 400)
  c.close()
})

test('headless Chromium talks to a WebSocket route that authenticates with a subprotocol token', async (t) => {
  const browser = await launchChromium(t)
  if (!browser) return
  const { app, url } = await serve((app) => {
    app.get('/', () =>
      new Response(
        `<!doctype html><body><script>
          window.log = []
          const ws = new WebSocket('ws://' + location.host + '/chat', ['token.s3cret'])
          ws.onopen = () => ws.send('ping from browser')
          ws.onmessage = (e) => { window.log.push(e.data); if (window.log.length === 2) ws.close(1000, 'thanks') }
          ws.onclose = (e) => window.log.push('closed ' + e.code + ' ' + ws.protocol)
        </script></body>`,
        { headers: { 'content-type': 'text/html' } },
      ),
    )
    app.ws('/chat', {
      upgrade: (req) => {
        if (req.header('sec-websocket-protocol')?.split(',')[0]?.trim() !== 'token.s3cret') throw new HTTPError(401)
        return { user: 'browser' }
      },
      open: (ws) => void ws.send('hello'),
      message: (ws, data) => void ws.send(`echo: ${String(data)}`),
    })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const page = await browser.newPage()
  await page.goto(url + '/')
  await page.waitForFunction(() => (globalThis as unknown as { log: string[] }).log.length === 3, undefined, { timeout: 15_000 })
  const log = await page.evaluate(() => (globalThis as unknown as { log: string[] }).log)
  t.deepEqual(log, ['hello', 'echo: ping from browser', 'closed 1000 token.s3cret'])
})

test('an async message hook is awaited before the next message, in order', async (t) => {
  let active = 0
  let most = 0
  const handled: string[] = []
  const { app, url } = await serve((app) =>
    app.ws('/slow', {
      message: async (ws, data) => {
        active++
        most = Math.max(most, active)
        await new Promise((r) => setTimeout(r, 15))
        handled.push(String(data))
        active--
        ws.send(`done ${String(data)}`)
      },
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const ws = new WebSocket(`${url.replace('http', 'ws')}/slow`)
  t.teardown(() => ws.close())
  await new Promise((r) => ws.once('open', r))
  const replies: string[] = []
  const all = new Promise<void>((resolve) =>
    ws.on('message', (m) => {
      replies.push(String(m))
      if (replies.length === 10) resolve()
    }),
  )
  for (let i = 0; i < 10; i++) ws.send(`m${i}`)
  await within(all, 10_000, 'ten replies')
  t.deepEqual(handled, Array.from({ length: 10 }, (_, i) => `m${i}`))
  t.is(most, 1, 'never two hooks of one socket at once')
  t.deepEqual(replies, handled.map((m) => `done ${m}`))
})

test('a stalled async message hook pauses the reader: the client cannot send past the inbound window', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  let delivered = 0
  const { app, url } = await serve((app) =>
    app.ws('/gate', {
      maxPayload: 1 << 20,
      message: async () => {
        delivered++
        await gate
      },
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const ws = new WebSocket(`${url.replace('http', 'ws')}/gate`)
  t.teardown(() => ws.close())
  await new Promise((r) => ws.once('open', r))
  const chunk = Buffer.alloc(64 * 1024)
  const total = 200 // 12.5 MiB: far more than the 1 MiB window plus the kernel's socket buffers
  for (let i = 0; i < total; i++) ws.send(chunk)
  await sleep(500)
  t.is(delivered, 1, 'the first hook is still running; nothing else was delivered')
  t.true(ws.bufferedAmount > 2 * 1024 * 1024, `${ws.bufferedAmount} bytes still in the client: the server stopped reading`)
  release()
  await within(
    (async () => {
      while (delivered < total) await sleep(20)
    })(),
    20_000,
    'every message delivered once the hook finished',
  )
  t.is(delivered, total)
})

test('regression: every one of ten pings sent together gets its pong, with its payload (Autobahn 2.10)', async (t) => {
  const { app, port } = await serve((app) => app.ws('/echo', { message: (ws, data) => void ws.send(data) }))
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await connect(wsUrl(port, '/echo'))
  const pongs: string[] = []
  const all = within(
    new Promise<void>((resolve) =>
      c.on('pong', (d) => {
        pongs.push(d.toString())
        if (pongs.length === 10) resolve()
      }),
    ),
    5000,
    'ten pongs',
  )
  for (let i = 0; i < 10; i++) c.ping(`p${i}`)
  await all
  t.deepEqual(pongs, Array.from({ length: 10 }, (_, i) => `p${i}`))
  c.close()
})

