/** HTTP/1.x semantics over raw sockets: 1.0, HEAD, keep-alive, pipelining and every limit's status. */
import test from 'ava'
import { dechunk, parseRaw, rawExchange, serve } from './helpers.js'

const { app, port, url } = await serve(
  (app) => {
    app.get('/text', () => 'hello')
    app.get('/gen', async function* () {
      yield 'one,'
      yield 'two'
    })
    app.post('/upload', async (req) => (await req.bytes()).byteLength)
    app.get('/users/:id', (req) => `user ${req.params.id}`)
    app.put('/users/:id', () => 'updated')
  },
  { limits: { maxBodySize: 1000, maxHeaderSize: 8192, maxUrlLength: 2048 } },
)
test.after.always(() => app.close())

const req = (s: string) => s.replace(/\n/g, '\r\n')

test('HTTP/1.0 clients get a close-delimited stream, never chunked', async (t) => {
  const raw = await rawExchange(port, req('GET /gen HTTP/1.0\n\n'))
  const { statusLine, headers, body } = parseRaw(raw)
  t.is(statusLine, 'HTTP/1.0 200 OK')
  t.false('transfer-encoding' in headers)
  t.is(body.toString(), 'one,two')
})

test('HTTP/1.0 clients get a plain body with its length', async (t) => {
  const { statusLine, headers, body } = parseRaw(await rawExchange(port, req('GET /text HTTP/1.0\n\n')))
  t.is(statusLine, 'HTTP/1.0 200 OK')
  t.is(headers['content-length'], '5')
  t.is(body.toString(), 'hello')
})

test('HEAD returns the GET headers without a body', async (t) => {
  const raw = await rawExchange(port, req('HEAD /text HTTP/1.1\nHost: x\nConnection: close\n\n'))
  const { statusLine, headers, body } = parseRaw(raw)
  t.is(statusLine, 'HTTP/1.1 200 OK')
  t.is(headers['content-length'], '5')
  t.is(headers['content-type'], 'text/plain; charset=utf-8')
  t.is(body.length, 0)
})

test('HEAD on a stream sends the head and no body', async (t) => {
  const raw = await rawExchange(port, req('HEAD /gen HTTP/1.1\nHost: x\nConnection: close\n\n'))
  const { statusLine, headers, body } = parseRaw(raw)
  t.is(statusLine, 'HTTP/1.1 200 OK')
  t.is(headers['content-type'], 'text/plain; charset=utf-8')
  t.is(body.length, 0)
})

test('pipelined requests on one connection are answered in order', async (t) => {
  const raw = await rawExchange(
    port,
    req('GET /users/1 HTTP/1.1\nHost: x\n\nGET /gen HTTP/1.1\nHost: x\n\nGET /users/3 HTTP/1.1\nHost: x\nConnection: close\n\n'),
  )
  const text = raw.toString()
  const a = text.indexOf('user 1')
  const b = text.indexOf('one,')
  const c = text.indexOf('user 3')
  t.true(a > 0 && b > a && c > b, text)
  t.is(text.match(/HTTP\/1\.1 200 OK/g)?.length, 3)
})

test.serial('keep-alive connections are reused by fetch', async (t) => {
  const before = app.stats().connectionsTotal
  for (let i = 0; i < 5; i++) t.is(await (await fetch(url + '/text')).text(), 'hello')
  t.true(app.stats().connectionsTotal - before < 5, "five requests should not need five connections")
})

test('an unknown path is 404 and counted', async (t) => {
  const before = app.stats().notFound
  const { statusLine, body } = parseRaw(await rawExchange(port, req('GET /nope HTTP/1.1\nHost: x\nConnection: close\n\n')))
  t.is(statusLine, 'HTTP/1.1 404 Not Found')
  t.is(body.toString(), 'Not Found')
  t.is(app.stats().notFound, before + 1)
})

test('a wrong method is 405 with an Allow header', async (t) => {
  const res = await fetch(url + '/users/1', { method: 'DELETE' })
  t.is(res.status, 405)
  t.is(res.headers.get('allow'), 'GET, HEAD, PUT')
  t.true(app.stats().methodNotAllowed >= 1)
})

test('a declared body over maxBodySize is 413 before the handler runs', async (t) => {
  const raw = await rawExchange(port, req('POST /upload HTTP/1.1\nHost: x\nContent-Length: 5000\n\n') + 'x'.repeat(5000))
  t.is(parseRaw(raw).statusLine, 'HTTP/1.1 413 Payload Too Large')
  t.true(app.stats().bodyTooLarge >= 1)
})

test('a chunked body that grows over maxBodySize is 413', async (t) => {
  const chunk = 'x'.repeat(600)
  const body = `258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`
  const raw = await rawExchange(port, req('POST /upload HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nConnection: close\n\n') + body)
  t.is(parseRaw(raw).statusLine, 'HTTP/1.1 413 Payload Too Large')
})

test('a body within the limit reaches the handler whole', async (t) => {
  const res = await fetch(url + '/upload', { method: 'POST', body: 'y'.repeat(999) })
  t.is(await res.text(), '999')
})

test('oversized request headers are 431', async (t) => {
  const raw = await rawExchange(port, req(`GET /text HTTP/1.1\nHost: x\nX-Big: ${'a'.repeat(10_000)}\n\n`))
  t.is(parseRaw(raw).statusLine, 'HTTP/1.1 431 Request Header Fields Too Large')
  t.true(app.stats().headersTooLarge >= 1)
})

test('an overlong URL is 414', async (t) => {
  const raw = await rawExchange(port, req(`GET /text?${'q'.repeat(3000)} HTTP/1.1\nHost: x\nConnection: close\n\n`))
  t.is(parseRaw(raw).statusLine, 'HTTP/1.1 414 URI Too Long')
  t.true(app.stats().urlTooLong >= 1)
})

test('garbage is 400 and the server keeps serving', async (t) => {
  const raw = await rawExchange(port, 'THIS IS NOT HTTP\r\n\r\n')
  t.regex(raw.toString(), /^HTTP\/1\.1 400 Bad Request/)
  t.is(await (await fetch(url + '/text')).text(), 'hello')
})

test('a chunked stream over HTTP/1.1 is properly terminated', async (t) => {
  const raw = await rawExchange(port, req('GET /gen HTTP/1.1\nHost: x\nConnection: close\n\n'))
  const { headers, body } = parseRaw(raw)
  t.is(headers['transfer-encoding'], 'chunked')
  const { chunks, terminated } = dechunk(body)
  t.true(terminated)
  t.is(Buffer.concat(chunks).toString(), 'one,two')
})
