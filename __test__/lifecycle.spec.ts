/** Server lifecycle and protection: graceful close, cut after timeout, connection limit, timeouts, stats. */
import test from 'ava'
import net from 'node:net'
import { Catzilla, sse } from '../index.js'
import { deferred, openRaw, parseRaw, rawExchange, serve, sleep, within } from './helpers.js'

function closedWithin(sock: net.Socket, ms: number): Promise<Buffer> {
  const data: Buffer[] = []
  sock.on('data', (c) => data.push(c))
  return within(
    new Promise<Buffer>((resolve) => {
      sock.on('close', () => resolve(Buffer.concat(data)))
      sock.on('error', () => {})
    }),
    ms,
    'server closing the connection',
  )
}

test('graceful close lets an in-flight stream finish, then resolves', async (t) => {
  const release = deferred()
  const started = deferred()
  const { app, url } = await serve((app) => {
    app.get('/slow', async function* () {
      yield 'start;'
      started.resolve()
      await release.promise
      yield 'end'
    })
  })
  const res = fetch(url + '/slow').then((r) => r.text())
  await within(started.promise, 5000, 'stream start')
  let closed = false
  const closing = app.close({ timeout: 10_000 }).then(() => (closed = true))
  await sleep(100)
  t.false(closed, 'close must wait for the in-flight stream')
  release.resolve()
  t.is(await res, 'start;end')
  await within(closing, 5000, 'close')
  t.true(closed)
})

test('close cuts streams that outlive the timeout and runs their finally', async (t) => {
  const finallyRan = deferred()
  const { app, port } = await serve((app) => {
    app.get('/forever', async function* (req) {
      try {
        yield 'tick'
        await new Promise((r) => req.signal.addEventListener('abort', r))
      } finally {
        finallyRan.resolve()
      }
    })
  })
  const sock = openRaw(port, '/forever')
  await new Promise((r) => sock.once('data', r))
  const ended = closedWithin(sock, 5000)
  await within(app.close({ timeout: 200 }), 5000, 'close after timeout')
  await ended
  await within(finallyRan.promise, 5000, 'generator finally')
  t.pass()
})

test('after close no new connections are accepted', async (t) => {
  const { app, port } = await serve((app) => app.get('/', () => 'x'))
  await app.close()
  await t.throwsAsync(rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 1000))
})

test('connections over maxConnections get 503 and are counted', async (t) => {
  const { app, port } = await serve((app) => app.get('/', () => 'x'), { limits: { maxConnections: 2 } })
  t.teardown(() => app.close({ timeout: 100 }))
  const a = net.connect(port, '127.0.0.1')
  const b = net.connect(port, '127.0.0.1')
  await Promise.all([new Promise((r) => a.on('connect', r)), new Promise((r) => b.on('connect', r))])
  await sleep(100)
  const raw = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 3000)
  t.is(parseRaw(raw).statusLine, 'HTTP/1.1 503 Service Unavailable')
  t.is(app.stats().connectionsRejected, 1)
  a.destroy()
  b.destroy()
})

test('a slowloris head is cut by the headers timeout', async (t) => {
  const { app, port } = await serve((app) => app.get('/', () => 'x'), { timeouts: { headers: 300 } })
  t.teardown(() => app.close({ timeout: 100 }))
  const sock = net.connect(port, '127.0.0.1')
  sock.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ')
  const timer = setInterval(() => sock.write('a'), 100)
  t.teardown(() => clearInterval(timer))
  await closedWithin(sock, 5000)
  t.pass()
})

test('an idle keep-alive connection is closed after the keep-alive timeout', async (t) => {
  const { app, port } = await serve((app) => app.get('/', () => 'x'), { timeouts: { keepAlive: 300 } })
  t.teardown(() => app.close({ timeout: 100 }))
  const sock = net.connect(port, '127.0.0.1')
  sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  const raw = await closedWithin(sock, 5000)
  t.is(parseRaw(raw).statusLine, 'HTTP/1.1 200 OK')
})

test('a body that stalls past the body timeout is 408', async (t) => {
  const { app, port } = await serve((app) => app.post('/up', async (req) => (await req.bytes()).length), {
    timeouts: { body: 300 },
    limits: { maxBodySize: 10_000_000 },
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const raw = await rawExchange(port, 'POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc', 5000)
  t.is(parseRaw(raw).statusLine, 'HTTP/1.1 408 Request Timeout')
  t.true(app.stats().timeouts >= 1)
})

test('listen fails with CZ_LISTEN when the port is taken', async (t) => {
  const { app, port } = await serve((app) => app.get('/', () => 'x'))
  t.teardown(() => app.close())
  const other = new Catzilla()
  other.get('/', () => 'y')
  const err = await t.throwsAsync(other.listen({ port }))
  t.is((err as Error & { code?: string }).code, 'CZ_LISTEN')
})

test('a bad route pattern throws CZ_ROUTE', (t) => {
  const app = new Catzilla()
  const err = t.throws(() => app.get('/a/*/b', () => 'x'))
  t.is((err as Error & { code?: string }).code, 'CZ_ROUTE')
})

test('stats count requests and streams and settle to zero active', async (t) => {
  const { app, url } = await serve((app) => {
    app.get('/t', () => 't')
    app.get('/s', function* () {
      yield 's'
    })
  })
  t.teardown(() => app.close())
  await (await fetch(url + '/t')).text()
  await (await fetch(url + '/s')).text()
  await sleep(50)
  const s = app.stats()
  t.is(s.requestsTotal, 2)
  t.is(s.streamsTotal, 1)
  t.is(s.streamsActive, 0)
  t.is(s.requestsActive, 0)
  t.true(s.streamBytes >= 1)
})

test('a client that stops reading is cut after streamIdle and its generator finishes', async (t) => {
  const finished = deferred()
  const { app, port } = await serve(
    (app) =>
      app.get('/firehose', async function* () {
        try {
          const chunk = Buffer.alloc(64 * 1024, 120)
          for (;;) yield chunk // far more than the kernel buffers hold
        } finally {
          finished.resolve()
        }
      }),
    { timeouts: { streamIdle: 500 } },
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const sock = openRaw(port, '/firehose')
  sock.pause() // never read: the server's writes block once the kernel buffers are full
  sock.on('error', () => {})
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()))
  await within(finished.promise, 10_000, 'generator finally')
  t.is(app.stats().stalledCut, 1)
  sock.destroy()
  await closed
})

test('a quiet stream with nothing to send is not cut by streamIdle', async (t) => {
  const { app, url } = await serve(
    (app) =>
      app.get('/quiet', () =>
        sse(
          (async function* () {
            yield { data: 'first' }
            await sleep(1500) // silence three times longer than streamIdle
            yield { data: 'second' }
          })(),
          { heartbeat: 0 },
        ),
      ),
    { timeouts: { streamIdle: 500 } },
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const text = await within((await fetch(`${url}/quiet`)).text(), 10_000, 'whole stream')
  t.is(text, 'data: first\n\ndata: second\n\n')
  t.is(app.stats().stalledCut, 0)
})
