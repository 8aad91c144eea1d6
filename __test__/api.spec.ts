/** API polish: json()/text() with status and headers, answering error hooks, notFound, cookies, nosniff streams, closing signal, listen details. */
import test from 'ava'
import net from 'node:net'
import { Catzilla, CatzillaError, HTTPError, json, sse, StreamingResponse, text } from '../index.js'
import { parseRaw, rawExchange, serve, sleep, within } from './helpers.js'

test('json() and text() send a status and headers with Content-Length, not chunked', async (t) => {
  const { app, port } = await serve((app) => {
    app.post('/users', () => json({ id: 7 }, { status: 201, headers: { location: '/users/7' } }))
    app.get('/busy', () => text('starting', { status: 503, headers: { 'retry-after': '5' } }))
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const created = parseRaw(await rawExchange(port, 'POST /users HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', 3000))
  t.is(created.statusLine, 'HTTP/1.1 201 Created')
  t.is(created.headers['content-type'], 'application/json')
  t.is(created.headers['content-length'], '8')
  t.is(created.headers.location, '/users/7')
  t.false('transfer-encoding' in created.headers)
  t.is(created.body.toString(), '{"id":7}')
  const busy = parseRaw(await rawExchange(port, 'GET /busy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000))
  t.is(busy.statusLine, 'HTTP/1.1 503 Service Unavailable')
  t.is(busy.headers['retry-after'], '5')
  t.is(busy.headers['content-length'], '8')
  t.throws(() => json(undefined), { instanceOf: TypeError })
  t.throws(() => text('x', { status: 99 }), { instanceOf: RangeError })
})

test('a WHATWG Response with a complete body gets Content-Length; a live one streams', async (t) => {
  const { app, port } = await serve((app) => {
    app.get('/whole', () => new Response('hello world', { status: 202, headers: { 'x-a': '1' } }))
    app.get('/live', () => {
      let n = 0
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          await sleep(20)
          if (n++ < 3) c.enqueue(new TextEncoder().encode(`part ${n}\n`))
          else c.close()
        },
      })
      return new Response(body)
    })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const whole = parseRaw(await rawExchange(port, 'GET /whole HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000))
  t.is(whole.statusLine, 'HTTP/1.1 202 Accepted')
  t.is(whole.headers['content-length'], '11')
  t.is(whole.headers['x-a'], '1')
  const live = parseRaw(await rawExchange(port, 'GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000))
  t.is(live.headers['transfer-encoding'], 'chunked')
  t.is(live.headers['x-content-type-options'], 'nosniff')
})

test('onError answers with whatever it returns; errors with a status, HTTPError bodies and a throwing hook', async (t) => {
  const reported: unknown[] = []
  const { app, url } = await serve(
    (app) => {
      app.get('/boom', () => {
        throw new Error('secret detail')
      })
      app.get('/teapot', () => {
        throw Object.assign(new Error('short and stout'), { statusCode: 418 })
      })
      app.get('/fivehundred', () => {
        throw Object.assign(new Error('db password wrong'), { status: 503 })
      })
      app.get('/invalid', () => {
        throw new HTTPError(422, 'Invalid', { body: { errors: ['name is required'] } })
      })
      app.get('/passthrough', () => {
        throw new HTTPError(409, 'Conflict here')
      })
      app.onError((err, req) => {
        if (req.path === '/passthrough') return undefined
        if (req.path === '/hookfails') throw new Error('hook broke')
        if (err instanceof HTTPError || (err as { statusCode?: number }).statusCode) return undefined
        return json({ error: 'internal', path: req.path }, { status: 500 })
      })
      app.get('/hookfails', () => {
        throw new Error('first')
      })
    },
    { onError: (e) => reported.push(e) },
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const boom = await fetch(`${url}/boom`)
  t.is(boom.status, 500)
  t.deepEqual(await boom.json(), { error: 'internal', path: '/boom' })
  const teapot = await fetch(`${url}/teapot`)
  t.is(teapot.status, 418)
  t.is(await teapot.text(), 'short and stout')
  const unavailable = await fetch(`${url}/fivehundred`)
  t.is(unavailable.status, 500, 'the hook answered the 5xx error')
  const invalid = await fetch(`${url}/invalid`)
  t.is(invalid.status, 422)
  t.is(invalid.headers.get('content-type'), 'application/json')
  t.deepEqual(await invalid.json(), { errors: ['name is required'] })
  const passthrough = await fetch(`${url}/passthrough`)
  t.is(passthrough.status, 409)
  t.is(await passthrough.text(), 'Conflict here')
  const hookfails = await fetch(`${url}/hookfails`)
  t.is(hookfails.status, 500)
  t.is(await hookfails.text(), 'Internal Server Error')
  const messages = reported.map((e) => (e as Error).message)
  t.true(messages.includes('secret detail') && messages.includes('db password wrong') && messages.includes('hook broke'))
  t.false(messages.includes('short and stout'), '4xx answers are not failures')
})

test('without a hook, an error with a numeric status uses it: 4xx with its message, 5xx without details', async (t) => {
  const { app, url } = await serve((app) => {
    app.get('/a', () => {
      throw Object.assign(new Error('Not allowed here'), { status: 403 })
    })
    app.get('/b', () => {
      throw Object.assign(new Error('stack trace secrets'), { statusCode: 502 })
    })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const a = await fetch(`${url}/a`)
  t.is(a.status, 403)
  t.is(await a.text(), 'Not allowed here')
  const b = await fetch(`${url}/b`)
  t.is(b.status, 502)
  t.is(await b.text(), 'Bad Gateway')
})

test('notFound answers unknown paths through the app middleware; a wrong method is still 405', async (t) => {
  const { app, url } = await serve((app) => {
    app.use(async (req, next) => {
      req.setHeader('x-mw', 'ran')
      return next()
    })
    app.get('/here', () => 'here')
    app.notFound((req) => json({ error: 'not found', path: req.path, method: req.method }, { status: 404 }))
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const res = await fetch(`${url}/nope/deeper?q=1`, { method: 'POST', body: 'x' })
  t.is(res.status, 404)
  t.is(res.headers.get('x-mw'), 'ran')
  t.deepEqual(await res.json(), { error: 'not found', path: '/nope/deeper', method: 'POST' })
  t.is((await fetch(`${url}/here`, { method: 'DELETE' })).status, 405)
  t.is(await (await fetch(`${url}/here`)).text(), 'here')
})

test('setHeader replaces, appendHeader adds, cookies are parsed and set with their attributes', async (t) => {
  const { app, port } = await serve((app) => {
    app.get('/c', (req) => {
      req.setHeader('x-one', 'a').setHeader('X-One', 'b')
      req.appendHeader('x-many', '1').appendHeader('x-many', '2')
      req.setCookie('session', 'abc 123', { httpOnly: true, secure: true, sameSite: 'lax', path: '/', maxAge: 60 })
      req.setCookie('theme', 'dark')
      return { cookies: req.cookies }
    })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const raw = await rawExchange(port, 'GET /c HTTP/1.1\r\nHost: x\r\nCookie: a=1; b=hello%20world\r\nConnection: close\r\n\r\n', 3000)
  const lines = raw.toString().split('\r\n')
  const values = (name: string) => lines.filter((l) => l.toLowerCase().startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).trim())
  t.deepEqual(values('x-one'), ['b'])
  t.deepEqual(values('x-many'), ['1', '2'])
  t.deepEqual(values('set-cookie'), ['session=abc%20123; Max-Age=60; Path=/; HttpOnly; Secure; SameSite=Lax', 'theme=dark'])
  t.deepEqual(JSON.parse(parseRaw(raw).body.toString()), { cookies: { a: '1', b: 'hello world' } })
})

test('streamed responses carry X-Content-Type-Options: nosniff unless the app sets it', async (t) => {
  const { app, url } = await serve((app) => {
    app.get('/gen', async function* () {
      yield 'a'
    })
    app.get('/own', () => new StreamingResponse(['x'], { headers: { 'x-content-type-options': 'custom' } }))
    app.get('/events', () => sse(['x'], { heartbeat: 0 }))
  })
  t.teardown(() => app.close({ timeout: 100 }))
  t.is((await fetch(`${url}/gen`)).headers.get('x-content-type-options'), 'nosniff')
  t.is((await fetch(`${url}/own`)).headers.get('x-content-type-options'), 'custom')
  t.is((await fetch(`${url}/events`)).headers.get('x-content-type-options'), 'nosniff')
})

test('close() fires req.closing first, so an SSE stream sends a last event and ends cleanly', async (t) => {
  const finallyRan: string[] = []
  const { app, url } = await serve((app) =>
    app.get('/events', (req) =>
      sse(
        (async function* () {
          try {
            yield 'hello'
            await new Promise((r) => req.closing.addEventListener('abort', r))
            yield { event: 'bye', data: 'restarting' }
          } finally {
            finallyRan.push('done')
          }
        })(),
        { heartbeat: 0 },
      ),
    ),
  )
  const res = await fetch(`${url}/events`)
  const reader = res.body!.getReader()
  let textSeen = ''
  const dec = new TextDecoder()
  const first = await reader.read()
  textSeen += dec.decode(first.value)
  const closed = app.close({ timeout: 5000 })
  for (;;) {
    const { value, done } = await within(reader.read(), 3000, 'stream end')
    if (done) break
    textSeen += dec.decode(value)
  }
  await closed
  t.is(textSeen, 'data: hello\n\nevent: bye\ndata: restarting\n\n')
  t.deepEqual(finallyRan, ['done'])
  t.true(app.closing.aborted)
})

test('listen accepts a host name; CZ_LISTEN carries the OS code; an unsupported return value names its type', async (t) => {
  const a = new Catzilla({ onError: () => {} })
  a.get('/sym', () => Symbol('x') as unknown as string)
  const { port, url } = await a.listen({ host: 'localhost', port: 0 })
  t.teardown(() => a.close({ timeout: 100 }))
  t.regex(url, /^http:\/\/(127\.0\.0\.1|\[::1\]):\d+$/)
  const sym = await fetch(`${url}/sym`)
  t.is(sym.status, 500)
  const b = new Catzilla()
  const err = await t.throwsAsync(b.listen({ host: url.includes('[') ? '::1' : '127.0.0.1', port }), { instanceOf: CatzillaError })
  t.is(err?.code, 'CZ_LISTEN')
  t.is(err?.osCode, 'EADDRINUSE')
  // A port Node itself holds is refused the same way.
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  t.teardown(() => server.close())
  const held = (server.address() as net.AddressInfo).port
  const c = new Catzilla()
  const err2 = await t.throwsAsync(c.listen({ port: held }), { instanceOf: CatzillaError })
  t.is(err2?.osCode, 'EADDRINUSE')
})

test('onFinish reports the bytes Rust sent for file(), and a HEAD request is not reported as aborted', async (t) => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs')
  const { join } = await import('node:path')
  const { tmpdir } = await import('node:os')
  const { file } = await import('../index.js')
  const dir = mkdtempSync(join(tmpdir(), 'cz-api-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'ten.txt'), '0123456789')
  const seen: Array<{ path: string; method: string; status: number; bytes: number; aborted: boolean }> = []
  const { app, url } = await serve((app) => {
    app.use(async (req, next) => {
      req.onFinish((i) => seen.push({ path: req.path, method: req.method, status: i.status, bytes: i.bytes, aborted: i.aborted }))
      return next()
    })
    app.get('/ten', () => file(join(dir, 'ten.txt')))
    app.get('/gen', async function* () {
      yield 'abc'
    })
    app.get('/hello', () => 'hello')
  })
  t.teardown(() => app.close({ timeout: 100 }))
  await (await fetch(`${url}/ten`)).text()
  await (await fetch(`${url}/ten`, { headers: { range: 'bytes=2-4' } })).text()
  for (const path of ['/gen', '/hello']) await (await fetch(url + path, { method: 'HEAD' })).text()
  await within((async () => { while (seen.length < 4) await sleep(10) })(), 3000, 'onFinish')
  const by = (p: string, m = 'GET') => seen.filter((s) => s.path === p && s.method === m)
  t.deepEqual(by('/ten').map((s) => [s.status, s.bytes]), [[200, 10], [206, 3]])
  for (const p of ['/gen', '/hello']) t.false(by(p, 'HEAD')[0]?.aborted ?? true, `HEAD ${p}`)
})
