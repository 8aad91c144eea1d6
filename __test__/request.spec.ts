/** The request object: head fields, params, query, headers, bodies (whole and streamed) and middleware. */
import test from 'ava'
import net from 'node:net'
import { HTTPError } from '../index.js'
import { deferred, parseRaw, serve, within } from './helpers.js'

const firstChunkSeen = deferred<number>()
const { app, url, port } = await serve((app) => {
  app.get('/echo/:name/files/*', (req) => ({
    method: req.method,
    url: req.url,
    path: req.path,
    params: req.params,
    q: req.query.getAll('q'),
    ua: req.header('User-Agent'),
    custom: req.headers['x-custom'],
    ip: req.ip,
    version: req.httpVersion,
  }))
  app.post('/text', async (req) => `got ${await req.text()}`)
  app.post('/json', async (req) => ({ parsed: await req.json() }))
  app.post('/bytes', async (req) => (await req.bytes()).byteLength)
  app.post('/twice', async (req) => {
    await req.text()
    await req.text()
  })
  app.post('/stream-upload', async (req) => {
    let chunks = 0
    let bytes = 0
    for await (const c of req.body) {
      if (chunks === 0) firstChunkSeen.resolve(c.byteLength)
      chunks++
      bytes += c.byteLength
    }
    return { chunks, bytes }
  })
})
test.after.always(() => app.close())

test('head fields, decoded params, query and headers reach the handler', async (t) => {
  const res = await fetch(`${url}/echo/J%C3%B6rg/files/a/b.txt?q=1&q=2`, {
    headers: { 'user-agent': 'tester', 'x-custom': 'yes' },
  })
  t.deepEqual(await res.json(), {
    method: 'GET',
    url: '/echo/J%C3%B6rg/files/a/b.txt?q=1&q=2',
    path: '/echo/J%C3%B6rg/files/a/b.txt',
    params: { name: 'Jörg', '*': 'a/b.txt' },
    q: ['1', '2'],
    ua: 'tester',
    custom: 'yes',
    ip: '127.0.0.1',
    version: '1.1',
  })
})

test('text(), json() and bytes() read the whole body', async (t) => {
  t.is(await (await fetch(url + '/text', { method: 'POST', body: 'abc' })).text(), 'got abc')
  const j = await fetch(url + '/json', { method: 'POST', body: JSON.stringify({ a: [1] }) })
  t.deepEqual(await j.json(), { parsed: { a: [1] } })
  const big = await fetch(url + '/bytes', { method: 'POST', body: Buffer.alloc(300_000, 7) })
  t.is(await big.text(), '300000')
})

test('invalid JSON is a 400', async (t) => {
  const res = await fetch(url + '/json', { method: 'POST', body: '{nope' })
  t.is(res.status, 400)
  t.is(await res.text(), 'Invalid JSON body')
})

test('reading a body twice is an error, not a hang', async (t) => {
  const res = await fetch(url + '/twice', { method: 'POST', body: 'x' })
  t.is(res.status, 500)
})

test('a large upload is streamed: the handler sees chunk 1 before the client sends the rest', async (t) => {
  const sock = net.connect(port, '127.0.0.1')
  const total = 256 * 1024
  sock.write(`POST /stream-upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${total}\r\n\r\n`)
  sock.write(Buffer.alloc(total / 2, 1))
  const data: Buffer[] = []
  sock.on('data', (c) => data.push(c))
  const ended = new Promise((r) => sock.on('close', r))
  await within(firstChunkSeen.promise, 5000, 'first body chunk in the handler')
  sock.write(Buffer.alloc(total / 2, 2))
  await within(ended, 5000, 'response')
  const body = JSON.parse(parseRaw(Buffer.concat(data)).body.toString())
  t.is(body.bytes, total)
  t.true(body.chunks > 1)
})

test('trustProxy takes req.ip from X-Forwarded-For', async (t) => {
  const s = await serve((a) => a.get('/ip', (req) => req.ip), { trustProxy: true })
  t.teardown(() => s.app.close())
  const res = await fetch(s.url + '/ip', { headers: { 'x-forwarded-for': '203.0.113.9, 10.0.0.1' } })
  t.is(await res.text(), '203.0.113.9')
})

test('middleware runs in onion order and can replace or catch', async (t) => {
  const order: string[] = []
  const s = await serve((a) => {
    a.use(async (_req, next) => {
      order.push('outer in')
      const r = await next()
      order.push('outer out')
      return r
    })
    a.use(async (_req, next) => {
      order.push('inner in')
      await next()
      order.push('inner out')
    })
    a.get('/ok', () => {
      order.push('handler')
      return 'fine'
    })
    a.get(
      '/guarded',
      async (req, next) => (req.header('x-key') === 'k' ? next() : new HTTPError(401, 'no key')),
      () => 'secret',
    )
    a.get(
      '/caught',
      async (_req, next) => {
        try {
          return await next()
        } catch {
          return { recovered: true }
        }
      },
      () => {
        throw new Error('x')
      },
    )
  })
  t.teardown(() => s.app.close())
  t.is(await (await fetch(s.url + '/ok')).text(), 'fine')
  t.deepEqual(order, ['outer in', 'inner in', 'handler', 'inner out', 'outer out'])
  t.is(await (await fetch(s.url + '/guarded', { headers: { 'x-key': 'k' } })).text(), 'secret')
  t.is((await fetch(s.url + '/guarded')).status, 401)
  t.deepEqual(await (await fetch(s.url + '/caught')).json(), { recovered: true })
})
