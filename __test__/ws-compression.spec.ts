/** WebSocket permessage-deflate (RFC 7692) against real clients: `ws` with `perMessageDeflate` and headless Chromium. */
import test from 'ava'
import WebSocket from 'ws'
import type { WebSocketBehaviour } from '../index.js'
import { connect, launchChromium, next, serve, sleep, within } from './helpers.js'

const echo: WebSocketBehaviour = { maxPayload: 8 << 20, message: (ws, data) => void ws.send(data) }

/** A `ws` client that offers permessage-deflate and compresses everything it sends; `agreed` is the server's answer. */
async function deflating(url: string, perMessageDeflate: WebSocket.PerMessageDeflateOptions = { threshold: 0 }) {
  let agreed = ''
  const c = await connect(url, undefined, { perMessageDeflate }, (res) => {
    agreed = String(res.headers['sec-websocket-extensions'] ?? '')
  })
  return Object.assign(c, { agreed })
}

/** JSON-ish text that compresses well but is not one repeated byte. */
const rows = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => ({ id: i, name: `user ${i % 97}`, score: (i * 7919) % 1000 })))

/** Bytes the client has read from its TCP socket so far. */
const bytesRead = (c: WebSocket) => (c as unknown as { _socket: { bytesRead: number } })._socket.bytesRead

test('ws with perMessageDeflate negotiates compression and every message arrives intact, and compressed', async (t) => {
  const { app, port } = await serve((app) => app.ws('/z', { ...echo, compression: true }))
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await deflating(`ws://127.0.0.1:${port}/z`)
  t.is(c.agreed, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover')
  const text = rows(5000)
  const binary = Buffer.from(rows(3000))
  const before = bytesRead(c)
  const got = next(c, 4)
  c.send(text)
  c.send(binary)
  c.send('tiny')
  c.send('')
  const [a, b, tiny, empty] = await got
  t.is(a!.data, text)
  t.deepEqual(Buffer.from(b!.data, 'hex'), binary)
  t.is(tiny!.data, 'tiny')
  t.is(empty!.data, '')
  const wire = bytesRead(c) - before
  t.true(wire < (text.length + binary.length) / 3, `${wire} bytes on the wire for ${text.length + binary.length} bytes of messages`)
  c.close()
})

test('many messages in a row decompress with context takeover both ways', async (t) => {
  const { app, port } = await serve((app) => app.ws('/z', { ...echo, compression: { contextTakeover: true, serverMaxWindowBits: 10, threshold: 0 } }))
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await deflating(`ws://127.0.0.1:${port}/z`, { threshold: 0, clientMaxWindowBits: 15 })
  t.is(c.agreed, 'permessage-deflate; server_max_window_bits=10')
  const sent = Array.from({ length: 200 }, (_, i) => rows(20 + (i % 30)))
  const got = next(c, sent.length)
  for (const m of sent) c.send(m)
  t.deepEqual((await got).map((m) => m.data), sent)
  c.close()
})

test('a route without compression declines the offer and a client without it gets plain frames', async (t) => {
  const { app, port } = await serve((app) => {
    app.ws('/plain', echo)
    app.ws('/z', { ...echo, compression: true })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const offered = await deflating(`ws://127.0.0.1:${port}/plain`)
  t.is(offered.agreed, '')
  const plainClient = await connect(`ws://127.0.0.1:${port}/z`, undefined, { perMessageDeflate: false })
  t.is(plainClient.extensions, '')
  const got = next(plainClient)
  plainClient.send(rows(100))
  t.is((await got)[0]!.data, rows(100))
  offered.close()
  plainClient.close()
})

test('a compressed message that inflates past maxPayload closes with 1009', async (t) => {
  const { app, port } = await serve((app) => app.ws('/z', { ...echo, maxPayload: 64 * 1024, compression: true }))
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await deflating(`ws://127.0.0.1:${port}/z`)
  const closed = within(new Promise<number>((resolve) => c.once('close', (code) => resolve(code))), 5000, 'close')
  // 1 MiB of zeros is about 1 KiB compressed: only the inflated size can be checked.
  c.send(Buffer.alloc(1 << 20))
  t.is(await closed, 1009)
})

test('a topic message reaches compressed and plain subscribers alike', async (t) => {
  const { app, port } = await serve((app) => app.ws('/sub', { compression: true, open: (ws) => void ws.subscribe('news') }))
  t.teardown(() => app.close({ timeout: 100 }))
  const url = `ws://127.0.0.1:${port}/sub`
  const clients = [await deflating(url), await deflating(url), await connect(url, undefined, { perMessageDeflate: false })]
  await within(
    (async () => {
      while (app.subscribers('news') < 3) await sleep(5)
    })(),
    5000,
  )
  const got = clients.map((c) => next(c))
  const message = rows(2000)
  t.is(app.publish('news', message), 3)
  for (const g of got) t.is((await g)[0]!.data, message)
  for (const c of clients) c.close()
})

test('Chromium negotiates permessage-deflate and exchanges messages intact', async (t) => {
  const browser = await launchChromium(t)
  if (!browser) return
  const { app, url, port } = await serve((app) => {
    app.get('/', () => new Response('<!doctype html><title>z</title>', { headers: { 'content-type': 'text/html' } }))
    app.ws('/z', { ...echo, compression: true })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const page = await browser.newPage()
  await page.goto(url)
  const message = rows(4000)
  const result = await page.evaluate(
    ([target, message]) =>
      new Promise<{ extensions: string; same: boolean }>((resolve, reject) => {
        const ws = new WebSocket(target)
        ws.onopen = () => ws.send(message)
        ws.onmessage = (e) => resolve({ extensions: ws.extensions, same: e.data === message })
        ws.onerror = () => reject(new Error('websocket error'))
      }),
    [`ws://127.0.0.1:${port}/z`, message] as const,
  )
  t.regex(result.extensions, /^permessage-deflate/)
  t.true(result.same)
})
