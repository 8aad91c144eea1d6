/** Every row of the return-value table: exact status, headers and body over real sockets. */
import test from 'ava'
import { Readable } from 'node:stream'
import { HTTPError, StreamingResponse } from '../index.js'
import { serve } from './helpers.js'

const { app, url } = await serve((app) => {
  app.get('/string', () => 'hello')
  app.get('/buffer', () => Buffer.from([1, 2, 3]))
  app.get('/uint8', () => new Uint8Array([4, 5]))
  app.get('/object', () => ({ a: 1, b: [true, null] }))
  app.get('/array', () => [1, 'two'])
  app.get('/undefined', () => undefined)
  app.get('/null', () => null)
  app.get('/async', async () => 'later')
  app.get('/gen', async function* () {
    yield 'a'
    yield Buffer.from('b')
    yield 'c'
  })
  app.get('/sync-gen', function* () {
    yield 'x'
    yield 'y'
  })
  app.get('/bytes-gen', async function* () {
    yield new Uint8Array([0x41, 0x42])
  })
  app.get('/set', () => new Set(['p', 'q']))
  app.get('/empty-gen', async function* () {})
  app.get('/streaming', () =>
    new StreamingResponse(
      async function* () {
        yield '1'
        yield '2'
      },
      { status: 201, contentType: 'text/x-custom', headers: { 'x-extra': 'yes' } },
    ),
  )
  app.get('/writer', () =>
    new StreamingResponse(
      async (w) => {
        await w.write('hello ')
        await w.writeln('world')
        await w.close()
      },
      { contentType: 'text/plain' },
    ),
  )
  app.get('/writer-dispose', () =>
    new StreamingResponse(async (w) => {
      await using writer = w
      await writer.write('disposed')
    }),
  )
  app.get('/readable', () => Readable.from(['r1', 'r2']))
  app.get('/readable-stream', () => new ReadableStream({
    start(c) {
      c.enqueue(new TextEncoder().encode('w1'))
      c.enqueue(new TextEncoder().encode('w2'))
      c.close()
    },
  }))
  app.get('/response', () => new Response('made', { status: 202, headers: { 'x-r': '1', 'content-type': 'text/html' } }))
  app.get('/response-empty', () => new Response(null, { status: 304 }))
  app.get('/http-error', () => {
    throw new HTTPError(403, 'go away', { headers: { 'x-why': 'test' } })
  })
  app.get('/http-error-async', async () => {
    throw new HTTPError(422)
  })
  app.get('/throw', () => {
    throw new Error('secret details')
  })
  app.get('/reject', () => Promise.reject(new Error('secret details')))
  app.get('/gen-throws-first', async function* () {
    throw new Error('before first byte')
  })
  app.get('/bad-header-value', () =>
    new StreamingResponse(['x'], { headers: { 'x-bad': 'a\r\nb' } }),
  )
})

test.after.always(() => app.close())

async function get(path: string, init?: RequestInit) {
  const res = await fetch(url + path, init)
  return { res, body: Buffer.from(await res.arrayBuffer()) }
}

test('a string becomes 200 text/plain with a content-length', async (t) => {
  const { res, body } = await get('/string')
  t.is(res.status, 200)
  t.is(res.headers.get('content-type'), 'text/plain; charset=utf-8')
  t.is(res.headers.get('content-length'), '5')
  t.is(body.toString(), 'hello')
})

test('a Buffer and a Uint8Array become application/octet-stream', async (t) => {
  const a = await get('/buffer')
  t.is(a.res.headers.get('content-type'), 'application/octet-stream')
  t.deepEqual([...a.body], [1, 2, 3])
  const b = await get('/uint8')
  t.is(b.res.headers.get('content-type'), 'application/octet-stream')
  t.deepEqual([...b.body], [4, 5])
})

test('objects and arrays become JSON', async (t) => {
  const a = await get('/object')
  t.is(a.res.headers.get('content-type'), 'application/json')
  t.deepEqual(JSON.parse(a.body.toString()), { a: 1, b: [true, null] })
  const b = await get('/array')
  t.deepEqual(JSON.parse(b.body.toString()), [1, 'two'])
})

test('undefined and null become 204 with no body', async (t) => {
  for (const p of ['/undefined', '/null']) {
    const { res, body } = await get(p)
    t.is(res.status, 204)
    t.is(body.length, 0)
  }
})

test('an async handler result is awaited', async (t) => {
  t.is((await get('/async')).body.toString(), 'later')
})

test('an async generator streams chunked with text/plain when chunks are strings', async (t) => {
  const { res, body } = await get('/gen')
  t.is(res.status, 200)
  t.is(res.headers.get('transfer-encoding'), 'chunked')
  t.is(res.headers.get('content-length'), null)
  t.is(res.headers.get('content-type'), 'text/plain; charset=utf-8')
  t.is(body.toString(), 'abc')
})

test('a sync generator and other iterables stream too', async (t) => {
  t.is((await get('/sync-gen')).body.toString(), 'xy')
  t.is((await get('/set')).body.toString(), 'pq')
})

test('a generator of bytes streams as application/octet-stream', async (t) => {
  const { res, body } = await get('/bytes-gen')
  t.is(res.headers.get('content-type'), 'application/octet-stream')
  t.is(body.toString(), 'AB')
})

test('an empty generator gives an empty 200', async (t) => {
  const { res, body } = await get('/empty-gen')
  t.is(res.status, 200)
  t.is(body.length, 0)
})

test('StreamingResponse applies status, content type and headers', async (t) => {
  const { res, body } = await get('/streaming')
  t.is(res.status, 201)
  t.is(res.headers.get('content-type'), 'text/x-custom')
  t.is(res.headers.get('x-extra'), 'yes')
  t.is(body.toString(), '12')
})

test('a writer function streams what it writes', async (t) => {
  const { res, body } = await get('/writer')
  t.is(res.headers.get('content-type'), 'text/plain')
  t.is(body.toString(), 'hello world\n')
})

test('await using closes a StreamingWriter', async (t) => {
  t.is((await get('/writer-dispose')).body.toString(), 'disposed')
})

test('a Node Readable and a WHATWG ReadableStream stream their chunks', async (t) => {
  t.is((await get('/readable')).body.toString(), 'r1r2')
  t.is((await get('/readable-stream')).body.toString(), 'w1w2')
})

test('a WHATWG Response keeps its status, headers and body', async (t) => {
  const { res, body } = await get('/response')
  t.is(res.status, 202)
  t.is(res.headers.get('x-r'), '1')
  t.is(res.headers.get('content-type'), 'text/html')
  t.is(body.toString(), 'made')
  const empty = await get('/response-empty')
  t.is(empty.res.status, 304)
})

test('HTTPError answers with its status, message and headers', async (t) => {
  const { res, body } = await get('/http-error')
  t.is(res.status, 403)
  t.is(res.headers.get('x-why'), 'test')
  t.is(body.toString(), 'go away')
  const b = await get('/http-error-async')
  t.is(b.res.status, 422)
  t.is(b.body.toString(), 'Unprocessable Entity')
})

test('any other throw is a 500 without the error details, counted in stats', async (t) => {
  const before = app.stats().handlerErrors
  for (const p of ['/throw', '/reject', '/gen-throws-first']) {
    const { res, body } = await get(p)
    t.is(res.status, 500, p)
    t.is(body.toString(), 'Internal Server Error')
  }
  t.true(app.stats().handlerErrors >= before + 3)
})

test('a header value with CR/LF is refused with a 500, never injected', async (t) => {
  const { res, body } = await get('/bad-header-value')
  t.is(res.status, 500)
  t.is(res.headers.get('x-bad'), null)
  t.is(body.toString(), 'Internal Server Error')
})
