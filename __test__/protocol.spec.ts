/** Protocol regressions found by testing from outside: Host, lingering close, handshakes, timeouts, counters, routes. */
import test from 'ava'
import net from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { Catzilla, CatzillaError, file } from '../index.js'
import { parseRaw, rawExchange, serve, sleep, within } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'cz-protocol-'))
writeFileSync(join(dir, 'ten.txt'), '0123456789')
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

const crlf = (s: string) => s.replace(/\n/g, '\r\n')

async function hello() {
  return serve((app) => {
    app.get('/', () => 'hello')
    app.post('/upload', async (req) => (await req.bytes()).length)
    app.get('/ten', () => file(join(dir, 'ten.txt')))
    app.ws('/ws', { maxPayload: 1024, message: (ws, d) => void ws.send(d) })
  })
}

test('regression: Host validation — missing, duplicate and invalid Host headers are 400 with Connection: close', async (t) => {
  const { app, port } = await hello()
  t.teardown(() => app.close({ timeout: 100 }))
  for (const head of [
    'GET / HTTP/1.1\n\n',
    'GET / HTTP/1.1\nHost: a\nHost: a\n\n',
    'GET / HTTP/1.1\nHost: bad/host\n\n',
    'GET / HTTP/1.1\nHost: a, b\n\n',
    'GET hello HTTP/1.1\nHost: a\n\n',
  ]) {
    const { statusLine, headers } = parseRaw(await rawExchange(port, crlf(head), 3000))
    t.is(statusLine, 'HTTP/1.1 400 Bad Request', JSON.stringify(head))
    t.is(headers.connection, 'close', JSON.stringify(head))
  }
  const ok = parseRaw(await rawExchange(port, crlf('GET / HTTP/1.0\n\n'), 3000))
  t.is(ok.statusLine, 'HTTP/1.0 200 OK', 'HTTP/1.0 may omit Host')
  t.is(ok.body.toString(), 'hello')
  t.true(app.stats().badRequests >= 5)
})

test('regression: responses that died in a TCP reset — fetch gets 413 naming the limit for a 5 MiB body, every time', async (t) => {
  const { app, url } = await hello()
  t.teardown(() => app.close({ timeout: 100 }))
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${url}/upload`, { method: 'POST', body: Buffer.alloc(5 * 1024 * 1024, 1) })
    t.is(res.status, 413)
    t.regex(await res.text(), /limits\.maxBodySize/)
  }
})

test('regression: responses that died in a TCP reset — a client still sending a 1 MiB header line reads its 431', async (t) => {
  const { app, port } = await hello()
  t.teardown(() => app.close({ timeout: 100 }))
  for (let i = 0; i < 3; i++) {
    const raw = await rawExchange(port, Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(1024 * 1024)}\r\n\r\n`), 5000)
    t.is(parseRaw(raw).statusLine, 'HTTP/1.1 431 Request Header Fields Too Large')
  }
})

test('regression: responses that died in a TCP reset — a WebSocket message over maxPayload closes with 1009, not 1006', async (t) => {
  const { app, port } = await hello()
  t.teardown(() => app.close({ timeout: 100 }))
  for (let i = 0; i < 5; i++) {
    const c = new WebSocket(`ws://127.0.0.1:${port}/ws`)
    await within(new Promise((r, j) => { c.once('open', r); c.once('error', j) }), 5000, 'open')
    const code = new Promise<number>((r) => c.once('close', (code) => r(code)))
    c.on('error', () => {})
    c.send(Buffer.alloc(1024 * 1024, 7))
    t.is(await within(code, 8000, 'close'), 1009)
  }
})

test('regression: WebSocket handshake — a key that is not the base64 of 16 bytes and an HTTP/1.0 upgrade are 400', async (t) => {
  const { app, port } = await hello()
  t.teardown(() => app.close({ timeout: 100 }))
  const upgrade = (version: string, key: string) =>
    crlf(`GET /ws HTTP/${version}\nHost: x\nConnection: Upgrade\nUpgrade: websocket\nSec-WebSocket-Version: 13\nSec-WebSocket-Key: ${key}\n\n`)
  for (const [version, key] of [['1.1', '!!!!!!!!!!!!!!!!!!!!!!=='], ['1.1', 'dGhlIHNhbXBsZSBub25jZQ'], ['1.0', 'dGhlIHNhbXBsZSBub25jZQ==']] as const) {
    const { statusLine, headers } = parseRaw(await rawExchange(port, upgrade(version, key), 3000))
    t.regex(statusLine, /^HTTP\/1\.[01] 400 Bad Request$/, `${version} ${key}`)
    t.is(headers.connection, 'close')
  }
  const ok = parseRaw(await rawExchange(port, upgrade('1.1', 'dGhlIHNhbXBsZSBub25jZQ=='), 500))
  t.is(ok.statusLine, 'HTTP/1.1 101 Switching Protocols')
})

test('regression: header read timeout — a client stalling mid-head gets 408 and is counted; an idle one is not', async (t) => {
  const { app, port } = await serve((app) => app.get('/', () => 'hello'), { timeouts: { headers: 300 } })
  t.teardown(() => app.close({ timeout: 100 }))
  const raw = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ', 3000)
  const { statusLine, headers, body } = parseRaw(raw)
  t.is(statusLine, 'HTTP/1.1 408 Request Timeout')
  t.is(headers.connection, 'close')
  t.regex(body.toString(), /timeouts\.headers/)
  t.is(app.stats().headerTimeouts, 1)
  t.true(app.stats().timeouts >= 1)
  const idle = await rawExchange(port, '', 2000)
  t.is(idle.length, 0, 'an idle connection is closed without a response')
  t.is(app.stats().headerTimeouts, 1)
})

test('regression: requestsActive only grew — requests whose client left before the reply are no longer active', async (t) => {
  const { app, port } = await serve((app) =>
    app.get('/wait', (req) => new Promise((resolve) => req.signal.addEventListener('abort', () => resolve('late')))),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  for (let i = 0; i < 5; i++) {
    const sock = net.connect(port, '127.0.0.1', () => sock.write('GET /wait HTTP/1.1\r\nHost: x\r\n\r\n'))
    // Left once the request is in (a fixed sleep lost the race on a busy machine).
    await within((async () => { while (app.stats().requestsTotal !== i + 1) await sleep(10) })(), 5000, `request ${i + 1} read`)
    sock.destroy()
  }
  await within((async () => { while (app.stats().requestsActive !== 0) await sleep(20) })(), 5000, 'requestsActive back to 0')
  t.is(app.stats().requestsActive, 0)
  t.is(app.stats().requestsTotal, 5)
})

test('regression: Range with a plus sign is ignored — bytes=+1-2 gets the whole file', async (t) => {
  const { app, url } = await hello()
  t.teardown(() => app.close({ timeout: 100 }))
  const res = await fetch(`${url}/ten`, { headers: { range: 'bytes=+1-2' } })
  t.is(res.status, 200)
  t.is(await res.text(), '0123456789')
  const ranged = await fetch(`${url}/ten`, { headers: { range: 'bytes=1-2' } })
  t.is(ranged.status, 206)
  t.is(await ranged.text(), '12')
})

test('regression: an invalid first chunk is a 500 naming the type, not a 200 and a cut', async (t) => {
  const errors: unknown[] = []
  const { app, url } = await serve(
    (app) => {
      app.get('/map', () => new Map([['a', 1]]))
      app.get('/set', () => new Set([{ a: 1 }]))
      app.get('/promise', () => (function* () { yield Promise.resolve('x') })())
      app.get('/object', () => (function* () { yield { a: 1 } })())
      app.get('/fine', () => (function* () { yield 'a'; yield 'b' })())
    },
    { onError: (e) => errors.push(e) },
  )
  t.teardown(() => app.close({ timeout: 100 }))
  for (const [path, name] of [['/map', /Array as the first item of a Map/], ['/set', /Object as the first item of a Set/], ['/promise', /Promise .*async generator/], ['/object', /Object as the first item of a Generator/]] as const) {
    const before = errors.length
    const res = await fetch(url + path)
    t.is(res.status, 500, path)
    t.is(await res.text(), 'Internal Server Error')
    t.is(errors.length, before + 1, path)
    const err = errors[before] as CatzillaError
    t.is(err.code, 'CZ_BAD_CHUNK')
    t.regex(err.message, name)
  }
  t.is(await (await fetch(`${url}/fine`)).text(), 'ab')
})

test('regression: duplicate routes and parameter names throw CZ_ROUTE naming both', (t) => {
  const app = new Catzilla()
  app.get('/a', () => 'one')
  const dup = t.throws(() => app.get('/a', () => 'two'), { instanceOf: CatzillaError })
  t.is(dup?.code, 'CZ_ROUTE')
  t.regex(dup?.message ?? '', /GET "\/a" is already registered/)
  app.post('/a', () => 'post is another route')
  const params = t.throws(() => app.get('/u/:id/:id', () => 'x'), { instanceOf: CatzillaError })
  t.regex(params?.message ?? '', /"id" appears twice/)
  t.throws(() => app.static('/a', dir).static('/a', dir), { message: /already registered/ })
})

test('regression: a route with 26 parameters is CZ_ROUTE, not a panic that aborts the process', (t) => {
  const app = new Catzilla()
  const route = (n: number) => Array.from({ length: n }, (_, i) => `/:p${i}`).join('')
  app.get(`/ok${route(25)}`, () => 'x')
  const err = t.throws(() => app.get(`/bad${route(26)}`, () => 'x'), { instanceOf: CatzillaError })
  t.is(err?.code, 'CZ_ROUTE')
  t.regex(err?.message ?? '', /more than 25 parameters/)
})

test('limits.maxHeaders: 101 header fields are 431 by default, accepted when raised', async (t) => {
  const many = Array.from({ length: 101 }, (_, i) => `X-H${i}: v`).join('\r\n')
  const request = `GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${many}\r\n\r\n`
  const dflt = await hello()
  t.teardown(() => dflt.app.close({ timeout: 100 }))
  t.is(parseRaw(await rawExchange(dflt.port, request, 3000)).statusLine, 'HTTP/1.1 431 Request Header Fields Too Large')
  const raised = await serve((app) => app.get('/', () => 'hello'), { limits: { maxHeaders: 200 } })
  t.teardown(() => raised.app.close({ timeout: 100 }))
  t.is(parseRaw(await rawExchange(raised.port, request, 3000)).statusLine, 'HTTP/1.1 200 OK')
})

test('regression: repeated response headers are kept beside a managed header (two Set-Cookie and Connection: close)', async (t) => {
  const { app, port } = await serve((app) =>
    app.get('/c', () => {
      const headers = new Headers()
      headers.append('set-cookie', 'a=1')
      headers.append('set-cookie', 'b=2')
      headers.append('connection', 'close')
      return new Response('ok', { headers })
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const raw = (await rawExchange(port, 'GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000)).toString()
  const cookies = raw.split('\r\n').filter((l) => l.toLowerCase().startsWith('set-cookie:'))
  t.deepEqual(cookies.map((l) => l.slice(11).trim()), ['a=1', 'b=2'])
})

/** A masked client frame (FIN set): `opcode`, payload, and extra RSV bits (0x40 = RSV1). */
function clientFrame(opcode: number, payload: Buffer, rsv = 0): Buffer {
  const mask = Buffer.from([1, 2, 3, 4])
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))
  return Buffer.concat([Buffer.from([0x80 | rsv | opcode, 0x80 | payload.length]), mask, masked])
}

test('regression: a valid message just before a protocol violation in the same packet is echoed before the 1002 close (Autobahn 3.2)', async (t) => {
  const { app, port } = await serve((app) => app.ws('/echo', { message: (ws, data) => void ws.send(data) }))
  t.teardown(() => app.close({ timeout: 100 }))
  const sock = net.connect(port, '127.0.0.1')
  t.teardown(() => sock.destroy())
  const received: Buffer[] = []
  sock.on('data', (c) => received.push(c))
  const ended = new Promise<void>((r) => sock.on('close', () => r()))
  await new Promise((r) => sock.once('connect', r))
  sock.write(
    'GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  )
  await within(
    (async () => {
      while (!Buffer.concat(received).includes('\r\n\r\n')) await sleep(10)
    })(),
    5000,
    'the 101',
  )
  const head = Buffer.concat(received)
  received.length = 0
  received.push(head.subarray(head.indexOf('\r\n\r\n') + 4))
  // One write: a valid text message, then a frame with RSV1 set (no extension negotiated).
  sock.write(Buffer.concat([clientFrame(0x1, Buffer.from('Hello, world!')), clientFrame(0x1, Buffer.from('bad'), 0x40)]))
  await within(ended, 5000, 'the close')
  const frames = Buffer.concat(received)
  // Server frames are unmasked: [0x81, len, ...text] then [0x88, len, code hi, code lo, ...].
  t.is(frames[0], 0x81, 'the echo comes first')
  t.is(frames.subarray(2, 2 + frames[1]!).toString(), 'Hello, world!')
  const close = frames.subarray(2 + frames[1]!)
  t.is(close[0], 0x88, 'then the close')
  t.is(close.readUInt16BE(2), 1002)
})
