/** Writes refused while the client's socket is full: held in JS (not copied), then delivered whole and in order. */
import test from 'ava'
import net from 'node:net'
import { StreamingResponse, sse } from '../index.js'
import type { Catzilla, StreamingWriter } from '../index.js'
import { dechunk, deferred, parseRaw, serve, sleep, socketBufferCeiling, until, within } from './helpers.js'

const KiB = 1024

/** Chunk `i` of `size` bytes: its number, padding, a newline. */
function numbered(i: number, size: number): string {
  const head = String(i).padStart(10, '0')
  return head + '.'.repeat(size - head.length - 1) + '\n'
}

/** The numbers of the chunks in `body`, in order. */
function numbers(body: string): number[] {
  return body
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => Number(l.slice(0, 10)))
}

/** Opens `path` on a raw socket that does not read until `resume()`; resolves the whole exchange once the server closes or the body ends. */
function stalledClient(port: number, path: string) {
  const s = net.connect(port, '127.0.0.1')
  s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  s.pause()
  const parts: Buffer[] = []
  const done = new Promise<Buffer>((resolve, reject) => {
    s.on('data', (d: Buffer) => parts.push(d))
    s.on('end', () => resolve(Buffer.concat(parts)))
    s.on('error', reject)
  })
  return { socket: s, resume: () => s.resume(), done }
}

/** The one live stream's row in `app.streams()`. */
function row(app: Catzilla) {
  return app.streams().find((r) => r.kind === 'stream')
}

/**
 * Resolves once the stream has sent nothing for `quiet` ms (the client's socket refuses writes),
 * or once it is over (its row is gone): `false` then.
 */
async function socketFull(app: Catzilla, quiet = 300): Promise<boolean> {
  let last = -1
  let since = Date.now()
  let seen = false
  let over = false
  await until(
    () => {
      const r = row(app)
      if (r === undefined && seen) return (over = true)
      seen ||= r !== undefined
      const bytes = r?.bytes ?? -1
      if (bytes !== last || bytes <= 0) {
        last = bytes
        since = Date.now()
        return false
      }
      return Date.now() - since >= quiet
    },
    'the client socket is full',
    30_000,
    20,
  )
  return !over
}

test.serial('a writer that does not wait has its chunks held in JS while the client reads nothing, then delivered in order', async (t) => {
  const stalled = deferred()
  const burst = 512
  let heldAfterBurst = 0
  const { app, port } = await serve((app) => {
    app.get('/burst', () =>
      new StreamingResponse(async (w: StreamingWriter) => {
        let i = 0
        let full = false
        void stalled.promise.then(() => (full = true))
        // Keep the socket fed until the test sees it refuse writes (the last write may still wait).
        while (!full) await Promise.race([w.write(Buffer.from(numbered(i++, 16 * KiB))), stalled.promise])
        // Then a burst without waiting, text and bytes in turn: each write is refused or queued
        // behind a refused one, none is copied into the ring.
        for (let k = 0; k < burst; k++, i++) {
          const chunk = numbered(i, KiB)
          w.write(k % 2 === 0 ? chunk : Buffer.from(chunk))?.catch(() => {})
        }
        heldAfterBurst = w.bufferedAmount
        await w.close()
      }),
    )
  })
  t.teardown(() => app.close())
  const c = stalledClient(port, '/burst')
  t.teardown(() => c.socket.destroy())
  await socketFull(app)
  stalled.resolve()
  await until(() => heldAfterBurst > 0, 'the burst was written')
  await sleep(50)
  const buffered = row(app)!.buffered
  t.log(`after the burst: ${heldAfterBurst} bytes pending, ${buffered} in the ring`)
  // The ring holds at most what was copied before the socket refused (its 16 KiB floor); the
  // burst's 512 KiB waits in JS. Copied, it would all be in the ring.
  t.true(heldAfterBurst >= burst * KiB, `${heldAfterBurst} bytes pending`)
  t.true(buffered <= 32 * KiB, `${buffered} bytes in the ring`)
  c.resume()
  const { body } = parseRaw(await within(c.done, 30_000, 'the whole body'))
  const { chunks, terminated } = dechunk(body)
  t.true(terminated, 'the end came after the held chunks')
  const got = numbers(Buffer.concat(chunks).toString())
  t.is(got.length, got[got.length - 1]! + 1, 'every chunk once')
  t.true(got.every((n, i) => n === i), 'in order')
})

test.serial('an SSE stream to a client that stopped reading resumes with every event in order', async (t) => {
  // More than the kernel's socket buffers hold, so the socket refuses writes and the packed SSE
  // batches the generator produces meanwhile are held in JS.
  const events = Math.ceil((2 * socketBufferCeiling()) / 60)
  const { app, port } = await serve((app) => {
    app.get('/events', () =>
      sse(
        (async function* () {
          for (let i = 0; i < events; i++) yield { id: String(i), data: 'the quick brown fox jumps over the lazy dog' }
        })(),
        { heartbeat: 0 },
      ),
    )
  })
  t.teardown(() => app.close())
  const c = stalledClient(port, '/events')
  t.teardown(() => c.socket.destroy())
  t.true(await socketFull(app), 'the stream stalled')
  c.resume()
  const { body } = parseRaw(await within(c.done, 60_000, 'the whole stream'))
  const { chunks, terminated } = dechunk(body)
  t.true(terminated)
  const ids = Buffer.concat(chunks)
    .toString()
    .split('\n')
    .filter((l) => l.startsWith('id: '))
    .map((l) => Number(l.slice(4)))
  t.is(ids.length, events)
  t.true(ids.every((n, i) => n === i), 'every event once, in order')
})

test.serial('a generator against a client that reads in bursts delivers every byte in order', async (t) => {
  const total = 2 * socketBufferCeiling()
  const size = 4 * KiB
  const { app, port } = await serve((app) => {
    app.get('/gen', async function* () {
      for (let i = 0; i * size < total; i++) yield Buffer.from(numbered(i, size))
    })
  })
  t.teardown(() => app.close())
  const c = stalledClient(port, '/gen')
  t.teardown(() => c.socket.destroy())
  // Read in bursts: each pause fills the socket (writes refused), each burst frees it.
  for (let k = 0; k < 5; k++) {
    if (!(await socketFull(app, 150))) break // the body is already all in the kernel's buffers
    c.resume()
    await sleep(30)
    c.socket.pause()
  }
  c.resume()
  const { body } = parseRaw(await within(c.done, 60_000, 'the whole body'))
  const { chunks, terminated } = dechunk(body)
  t.true(terminated)
  const got = numbers(Buffer.concat(chunks).toString())
  t.is(got.length, Math.ceil(total / size))
  t.true(got.every((n, i) => n === i), 'in order')
})
