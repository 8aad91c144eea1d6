/** True streaming: incremental delivery, bounded pulls under backpressure, disconnects and aborts. */
import test from 'ava'
import { StreamClosedError, StreamingResponse } from '../index.js'
import type { CloseInfo } from '../index.js'
import { dechunk, deferred, openRaw, parseRaw, rawExchange, serve, sleep, socketBufferCeiling, within } from './helpers.js'

test('chunks reach the client before the generator finishes', async (t) => {
  const release = deferred()
  const { app, url } = await serve((app) => {
    app.get('/inc', async function* () {
      yield 'first;'
      await release.promise // resolved only once the client has seen chunk 1
      yield 'second'
    })
  })
  t.teardown(() => app.close())
  const res = await fetch(url + '/inc')
  const reader = res.body!.getReader()
  const one = await within(reader.read(), 5000, 'first chunk')
  t.is(Buffer.from(one.value!).toString(), 'first;')
  release.resolve()
  let rest = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    rest += Buffer.from(value).toString()
  }
  t.is(rest, 'second')
})

test('a generator is not pulled ahead of a client that stopped reading', async (t) => {
  const CHUNK = 16 * 1024
  const TOTAL_CHUNKS = 8192 // 128 MiB: far more than ring + socket buffers can hold
  let yields = 0
  const done = deferred()
  const { app, port } = await serve((app) => {
    app.get('/big', () =>
      new StreamingResponse(async function* () {
        const chunk = Buffer.alloc(CHUNK, 120)
        try {
          for (let i = 0; i < TOTAL_CHUNKS; i++) {
            yields++
            yield chunk
          }
        } finally {
          done.resolve()
        }
      }, { bufferSize: 64 * 1024 }),
    )
  })
  t.teardown(() => app.close())
  const sock = openRaw(port, '/big')
  let received = 0
  sock.once('data', (c) => {
    received += c.length
    sock.pause() // stop reading: the kernel buffers fill, then the ring, then the generator must wait
  })
  // Wait until the producer is parked: the count stops moving.
  let last = -1
  for (let i = 0; i < 100 && yields !== last; i++) {
    last = yields
    await sleep(300)
  }
  t.is(yields, last, 'the generator kept being pulled while the client did not read')
  const bound = Math.ceil((64 * 1024 + socketBufferCeiling() + 1024 * 1024) / CHUNK)
  t.true(yields <= bound, `pulled ${yields} chunks, bound ${bound}`)
  t.true(yields < TOTAL_CHUNKS)
  // Resume: everything arrives, in full.
  sock.on('data', (c) => (received += c.length))
  sock.resume()
  await within(done.promise, 30_000, 'generator completion')
  await within(new Promise((r) => sock.on('end', r)), 30_000, 'response end')
  t.is(yields, TOTAL_CHUNKS)
  t.true(received > TOTAL_CHUNKS * CHUNK)
  sock.destroy()
})

test('a client that disconnects runs the generator finally and aborts req.signal', async (t) => {
  const finallyRan = deferred()
  const signalled = deferred()
  const closed = deferred<CloseInfo>()
  const { app, port } = await serve((app) => {
    app.get('/forever', (req) => {
      req.signal.addEventListener('abort', () => signalled.resolve())
      return new StreamingResponse(
        async function* () {
          try {
            for (;;) yield Buffer.alloc(8192, 1)
          } finally {
            finallyRan.resolve()
          }
        },
        { onClose: (info) => closed.resolve(info) },
      )
    })
  })
  t.teardown(() => app.close())
  const sock = openRaw(port, '/forever')
  await new Promise((r) => sock.once('data', r))
  sock.destroy()
  await within(finallyRan.promise, 5000, 'generator finally')
  await within(signalled.promise, 5000, 'req.signal abort')
  const info = await within(closed.promise, 5000, 'onClose')
  t.true(info.aborted)
  t.true(info.bytes > 0)
})

test('a generator waiting on its own promise still learns of the disconnect', async (t) => {
  const finallyRan = deferred()
  const { app, port } = await serve((app) => {
    app.get('/idle', async function* (req) {
      try {
        yield 'hello'
        await new Promise((resolve) => req.signal.addEventListener('abort', resolve))
        yield 'never sent'
      } finally {
        finallyRan.resolve()
      }
    })
  })
  t.teardown(() => app.close())
  const sock = openRaw(port, '/idle')
  await new Promise((r) => sock.once('data', r))
  sock.destroy()
  await within(finallyRan.promise, 5000, 'generator finally after disconnect while idle')
  t.pass()
})

test('a pending handler sees req.signal abort when the client leaves before any reply', async (t) => {
  const signalled = deferred()
  const started = deferred()
  const { app, port } = await serve((app) => {
    app.get('/slow', (req) => {
      started.resolve()
      return new Promise((resolve) =>
        req.signal.addEventListener('abort', () => {
          signalled.resolve()
          resolve('too late')
        }),
      )
    })
  })
  t.teardown(() => app.close())
  const sock = openRaw(port, '/slow')
  await within(started.promise, 5000, 'handler start')
  sock.destroy()
  await within(signalled.promise, 5000, 'req.signal abort')
  t.pass()
})

test('writes after a disconnect reject with StreamClosedError (CZ_STREAM_CLOSED)', async (t) => {
  const failure = deferred<unknown>()
  const { app, port } = await serve((app) => {
    app.get('/writer', () =>
      new StreamingResponse(async (w) => {
        try {
          for (;;) await w.write(Buffer.alloc(16 * 1024, 2))
        } catch (err) {
          failure.resolve(err)
        }
      }),
    )
  })
  t.teardown(() => app.close())
  const sock = openRaw(port, '/writer')
  await new Promise((r) => sock.once('data', r))
  sock.destroy()
  const err = await within(failure.promise, 10_000, 'write rejection')
  t.true(err instanceof StreamClosedError)
  t.is((err as StreamClosedError).code, 'CZ_STREAM_CLOSED')
})

test('an error after the first byte cuts the connection without the terminating chunk', async (t) => {
  const onError = deferred<unknown>()
  const { app, port } = await serve((app) => {
    app.get('/midway', () =>
      new StreamingResponse(
        async function* () {
          yield 'partial'
          await new Promise((r) => setTimeout(r, 20))
          throw new Error('boom')
        },
        { onError: (e) => onError.resolve(e) },
      ),
    )
  })
  t.teardown(() => app.close())
  const raw = await rawExchange(port, 'GET /midway HTTP/1.1\r\nHost: x\r\n\r\n')
  const { statusLine, headers, body } = parseRaw(raw)
  t.is(statusLine, 'HTTP/1.1 200 OK')
  t.is(headers['transfer-encoding'], 'chunked')
  const { chunks, terminated } = dechunk(body)
  t.is(Buffer.concat(chunks).toString(), 'partial')
  t.false(terminated, 'the body must not be terminated')
  t.false(body.toString().includes('HTTP/1.1'), 'no second response may be spliced in')
  t.is(((await within(onError.promise, 5000, 'onError')) as Error).message, 'boom')
})

test('small writes that pile up while the socket is busy are coalesced', async (t) => {
  const { app, port } = await serve((app) => {
    app.get('/tiny', () =>
      new StreamingResponse((w: import('../index.js').StreamingWriter) => {
        for (let i = 0; i < 1000; i++) w.write('x') // synchronous burst: one turn of the event loop
        return w.close()
      }),
    )
  })
  t.teardown(() => app.close())
  const raw = await rawExchange(port, 'GET /tiny HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  const { chunks, terminated } = dechunk(parseRaw(raw).body)
  // 1000 separate frames would need 1000 chunk headers (and syscalls); coalesced they need a handful.
  t.true(chunks.length < 20, `${chunks.length} chunks for 1000 writes`)
  t.true(terminated)
  t.is(Buffer.concat(chunks).toString(), 'x'.repeat(1000))
})

test('100 concurrent streams all complete with the right bytes', async (t) => {
  const { app, url } = await serve((app) => {
    app.get('/s/:n', async function* (req) {
      const n = Number(req.params.n)
      for (let i = 0; i < 50; i++) {
        yield `${n}:${i};`
        if (i % 10 === 0) await new Promise((r) => setImmediate(r))
      }
    })
  })
  t.teardown(() => app.close())
  const bodies = await Promise.all(
    Array.from({ length: 100 }, (_, n) => fetch(`${url}/s/${n}`).then((r) => r.text())),
  )
  for (let n = 0; n < 100; n++) {
    t.is(bodies[n], Array.from({ length: 50 }, (_, i) => `${n}:${i};`).join(''))
  }
  t.is(app.stats().streamsActive, 0)
})

test('a per-response bufferSize bounds how far a writer gets ahead', async (t) => {
  const reached = deferred<number>()
  const { app, port } = await serve((app) => {
    app.get('/w', () =>
      new StreamingResponse(
        async (w) => {
          let maxBuffered = 0
          for (let i = 0; i < 64; i++) {
            await w.write(Buffer.alloc(1024))
            maxBuffered = Math.max(maxBuffered, w.bufferedAmount)
          }
          reached.resolve(maxBuffered)
          await w.close()
        },
        { bufferSize: 4096 },
      ),
    )
  })
  t.teardown(() => app.close())
  const raw = await rawExchange(port, 'GET /w HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.true(raw.length > 64 * 1024)
  t.true((await reached.promise) <= 4096 + 1024)
})


test('regression: a ring closed under a synchronously-yielding generator stops the pump instead of spinning', async (t) => {
  // Before the fix the pump ignored the native Closed status and kept pulling an infinite generator
  // on microtasks only, so the event loop never ran timers again.
  const finallyRan = deferred()
  const { app, port } = await serve((app) => {
    app.get('/spin', function* () {
      try {
        for (;;) yield 'x'.repeat(1024)
      } finally {
        finallyRan.resolve()
      }
    })
  })
  t.teardown(() => app.close())
  const sock = openRaw(port, '/spin')
  await new Promise((r) => sock.once('data', r))
  sock.destroy()
  const timerFired = new Promise<void>((r) => setTimeout(r, 200))
  await within(timerFired, 5000, 'a timer on the event loop')
  await within(finallyRan.promise, 5000, 'generator finally')
  t.pass()
})

test('chunks of every size, Uint8Array views included, arrive intact and in order', async (t) => {
  const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff))
  const backing = new Uint8Array(pattern(100_000, 5))
  const parts: Uint8Array[] = [
    Buffer.from('head;'),
    pattern(8192, 1),
    pattern(8191, 2),
    Buffer.from('x'),
    backing.subarray(1000, 60_000), // a view with an offset
    pattern(300, 3),
    pattern(70_000, 4), // larger than the ring: taken whole
    backing.subarray(5, 105),
  ]
  const { app, url } = await serve((app) => {
    app.get('/mixed', async function* () {
      for (let round = 0; round < 20; round++) {
        for (const p of parts) yield p
        yield `round ${round};`
      }
    })
  })
  t.teardown(() => app.close())
  const expected = Buffer.concat(Array.from({ length: 20 }, (_, round) => Buffer.concat([...parts, Buffer.from(`round ${round};`)])))
  const res = await fetch(url + '/mixed')
  const got = Buffer.from(await res.arrayBuffer())
  t.is(got.length, expected.length)
  t.true(got.equals(expected))
})

test('regression: a generator that refills one Buffer after each yield sends every chunk as it was yielded', async (t) => {
  // Chunks are copied into the ring when written. A ring that held the generator's Buffer by
  // reference instead (tried, and reverted: a worker's exit, a transferred ArrayBuffer or a grown
  // WebAssembly memory would free bytes still queued for the socket) sent the newest contents
  // for every chunk still queued, and this test caught it.
  const N = 400
  const CHUNK = 16 * 1024
  const { app, url } = await serve((app) => {
    app.get('/refill', async function* () {
      const buf = Buffer.alloc(CHUNK)
      for (let i = 0; i < N; i++) {
        buf.fill(i & 0xff)
        yield buf
      }
    })
  })
  t.teardown(() => app.close())
  const got = Buffer.from(await (await fetch(url + '/refill')).arrayBuffer())
  t.is(got.length, N * CHUNK)
  const wrong = Array.from({ length: N }, (_, i) => i).filter((i) => got[i * CHUNK] !== (i & 0xff) || got[(i + 1) * CHUNK - 1] !== (i & 0xff))
  t.deepEqual(wrong, [])
})
