/** Worker threads: `serve()` runs one app module on several JS threads over one Rust server. */
import test from 'ava'
import WebSocket from 'ws'
import { serve } from '../index.js'
import type { ServeOptions, Served } from '../index.js'
import { until, within } from './helpers.js'

const APP = new URL('./fixtures/workers-app.ts', import.meta.url)

async function start(t: { teardown(fn: () => Promise<void>): void }, options: ServeOptions = {}): Promise<Served> {
  const s = await serve(APP, { port: 0, host: '127.0.0.1', ...options })
  t.teardown(() => s.close({ timeout: 1000 }))
  return s
}

interface Said {
  type: string
  worker: number
  text?: string
  session?: string
  recovered?: boolean
}

/** A message as the tests read it: JSON from the app, or `{ type: 'text' }` for a publish. */
function said(text: string): Said {
  return text.startsWith('{') ? (JSON.parse(text) as Said) : { type: 'text', worker: -1, text }
}

/** A WebSocket client that keeps every message it got. */
async function client(url: string) {
  const ws = new WebSocket(url)
  const got: Said[] = []
  ws.on('message', (d) => got.push(said(String(d))))
  await within(new Promise((r, j) => ws.once('open', r).once('error', j)), 5000, 'ws open')
  await until(() => got.some((m) => m.type === 'hello'), 'hello message')
  const hello = got.find((m) => m.type === 'hello')!
  const session = got.find((m) => m.type === 'cz-session')?.session
  return { ws, got, worker: hello.worker, session }
}

test('requests spread across every worker thread (least outstanding requests first)', async (t) => {
  const s = await start(t, { workers: 3 })
  t.is(s.workers, 3)
  const answers = await Promise.all(
    Array.from({ length: 90 }, () => fetch(`${s.url}/who`).then((r) => r.json() as Promise<{ worker: number; threadId: number }>)),
  )
  const workers = new Set(answers.map((a) => a.worker))
  t.deepEqual([...workers].sort(), [0, 1, 2], 'every thread answered some of 90 concurrent requests')
  t.is(new Set(answers.map((a) => a.threadId)).size, 3, 'three distinct JS threads')
  t.is(s.app.stats().workers, 3)
  t.regex(s.app.metricsText(), /^catzilla_workers 3$/m, 'and in the Prometheus metrics')
})

test('workers: 1 serves on the main thread alone', async (t) => {
  const s = await start(t)
  t.is(s.workers, 1)
  const a = (await (await fetch(`${s.url}/who`)).json()) as { worker: number }
  t.is(a.worker, 0)
})

test('a stream that needs many drains and a streamed request body stay on the thread that took them', async (t) => {
  const s = await start(t, { workers: 2 })
  const runs = await Promise.all(
    Array.from({ length: 8 }, async () => {
      const r = await fetch(`${s.url}/bulk`)
      const body = Buffer.from(await r.arrayBuffer())
      const worker = Number(r.headers.get('x-worker'))
      return { worker, length: body.length, right: body.every((b) => b === worker) }
    }),
  )
  for (const r of runs) {
    t.is(r.length, 64 * 64 * 1024, 'the whole stream arrived')
    t.true(r.right, 'every byte came from the generator of the worker that opened it')
  }
  const big = Buffer.alloc(4 * 1024 * 1024, 7)
  const posts = await Promise.all(
    Array.from({ length: 6 }, () =>
      fetch(`${s.url}/count`, { method: 'POST', body: big }).then((r) => r.json() as Promise<{ worker: number; bytes: number }>),
    ),
  )
  for (const p of posts) t.is(p.bytes, big.length, 'every body chunk reached the handler reading it')
})

test('a WebSocket keeps its worker, and sockets are spread across workers', async (t) => {
  const s = await start(t, { workers: 2 })
  const ws = s.url.replace('http', 'ws') + '/ws'
  const clients = await Promise.all(Array.from({ length: 8 }, () => client(ws)))
  t.is(new Set(clients.map((c) => c.worker)).size, 2, 'sockets opened on both threads')
  for (const c of clients) for (let i = 0; i < 5; i++) c.ws.send(`m${i}`)
  await until(() => clients.every((c) => c.got.filter((m) => m.type === 'echo').length === 5), 'every echo')
  for (const c of clients) {
    t.true(c.got.filter((m) => m.type === 'echo').every((m) => m.worker === c.worker), 'echoed by the thread that opened it')
    c.ws.close()
  }
})

test('a publish made on one worker reaches WebSocket and SSE subscribers on another', async (t) => {
  const s = await start(t, { workers: 2 })
  const c = await client(s.url.replace('http', 'ws') + '/ws')
  c.ws.send('sub news')
  await until(() => c.got.some((m) => m.type === 'subscribed'), 'subscribed')
  const events = new AbortController()
  t.teardown(() => events.abort())
  const sseBody = (await fetch(`${s.url}/events/news`, { signal: events.signal })).body!.getReader()
  await until(() => s.app.subscribers('news') === 2, 'two subscribers')
  // Publish until a request lands on the thread that does not hold the socket.
  let other: { worker: number; reached: number } | undefined
  for (let i = 0; i < 50 && other === undefined; i++) {
    const r = (await (await fetch(`${s.url}/publish/news`, { method: 'POST', body: `hi ${i}` })).json()) as { worker: number; reached: number }
    if (r.worker !== c.worker) other = r
  }
  t.truthy(other, 'some publish ran on the other thread')
  t.is(other!.reached, 2, 'it reached both subscribers')
  await until(() => c.got.some((m) => m.type === 'text' && /^hi \d+$/.test(m.text!)), 'the socket got a publish')
  const sseText = new TextDecoder().decode((await within(sseBody.read(), 5000, 'sse event')).value)
  t.regex(sseText, /data: hi \d+/)
  c.ws.close()
})

test('a resumed WebSocket session goes back to the worker that holds it', async (t) => {
  const s = await start(t, { workers: 3 })
  const base = s.url.replace('http', 'ws') + '/ws'
  const first = await client(base)
  t.truthy(first.session)
  first.ws.terminate()
  await until(() => s.app.streams().length === 0, 'the server saw the connection drop')
  let session = first.session!
  for (let i = 0; i < 4; i++) {
    // Load on the first worker would send a fresh connection elsewhere; a resume still goes home.
    const again = new WebSocket(`${base}?cz_session=${session}`)
    const got: Said[] = []
    again.on('message', (d) => got.push(said(String(d))))
    await until(() => got.some((m) => m.type === 'hello') && got.some((m) => m.type === 'cz-session'), 'resumed hello')
    const hello = got.find((m) => m.type === 'cz-session')!
    t.true(hello.recovered, `resume ${i} recovered the session`)
    t.is(got.find((m) => m.type === 'hello')!.worker, first.worker, `resume ${i} landed on worker ${first.worker}`)
    session = hello.session!
    again.terminate()
    await until(() => s.app.stats().wsResumed >= i + 1, 'resume counted')
  }
})

test('a worker that dies is reported and replaced; the other threads keep their connections', async (t) => {
  const died: number[] = []
  const s = await start(t, { workers: 3, onWorkerError: (_err, w) => void died.push(w) })
  const ws = s.url.replace('http', 'ws') + '/ws'
  const clients = await Promise.all(Array.from({ length: 9 }, () => client(ws)))
  const streams = await Promise.all(
    Array.from({ length: 9 }, async () => {
      const r = await fetch(`${s.url}/forever`)
      const reader = r.body!.getReader()
      const stream = { worker: Number(r.headers.get('x-worker')), ended: false, lines: 0 }
      void (async () => {
        try {
          for (;;) {
            const { done, value } = await reader.read()
            if (done) break
            stream.lines += new TextDecoder().decode(value).split('\n').length - 1
          }
        } catch {
          /* a cut stream is an end too */
        }
        stream.ended = true
      })()
      t.teardown(() => reader.cancel().catch(() => undefined))
      return stream
    }),
  )
  // Crash one worker thread (a request that lands on the main thread is refused with 409).
  let crashed: number | undefined
  for (let i = 0; i < 50 && crashed === undefined; i++) {
    const r = await fetch(`${s.url}/crash`, { method: 'POST' })
    if (r.status === 200) crashed = ((await r.json()) as { worker: number }).worker
  }
  t.truthy(crashed, 'a worker thread took /crash')
  await until(() => died.includes(crashed!), 'the death reported', 5000)
  await until(() => s.app.stats().workerExits >= 1, 'counted in stats')
  t.regex(s.app.metricsText(), /^catzilla_worker_exits_total [1-9]/m)
  const survivors = clients.filter((c) => c.worker !== crashed)
  const victims = clients.filter((c) => c.worker === crashed)
  for (const c of victims) await until(() => c.ws.readyState === WebSocket.CLOSED, 'the dead worker\'s sockets are closed')
  for (const c of survivors) c.ws.send('still there?')
  await until(() => survivors.every((c) => c.got.some((m) => m.text === 'still there?')), 'survivors still echo')
  t.true(survivors.length > 0)
  const streamVictims = streams.filter((x) => x.worker === crashed)
  await until(() => streamVictims.every((x) => x.ended), 'the dead worker\'s streams end', 5000)
  const alive = streams.filter((x) => x.worker !== crashed)
  const before = alive.map((x) => x.lines)
  await until(() => alive.every((x, k) => x.lines > before[k]! + 2), 'the other workers\' streams keep flowing')
  t.true(alive.every((x) => !x.ended))
  await until(() => s.workers === 3, 'the worker is replaced', 10_000)
  const answers = await Promise.all(Array.from({ length: 60 }, () => fetch(`${s.url}/who`).then((r) => r.json() as Promise<{ worker: number }>)))
  t.true(answers.some((a) => a.worker === crashed), 'the replacement takes requests under the same index')
  for (const c of clients) c.ws.close()
})

test('a worker whose routes differ from the main thread\'s is refused at start-up with CZ_WORKER_ROUTES', async (t) => {
  const err = await t.throwsAsync(serve(new URL('./fixtures/workers-mismatch.ts', import.meta.url), { port: 0, workers: 2 }))
  t.is((err as { code?: string }).code, 'CZ_WORKER_ROUTES')
  t.regex(err!.message, /only-on-workers/)
})

test('an app module without a default function is refused with CZ_WORKER', async (t) => {
  const err = await t.throwsAsync(serve(new URL('./helpers.ts', import.meta.url), { port: 0 }))
  t.is((err as { code?: string }).code, 'CZ_WORKER')
})

test('workers must be a positive integer or auto', async (t) => {
  await t.throwsAsync(serve(APP, { port: 0, workers: 0 }), { instanceOf: RangeError })
  await t.throwsAsync(serve(APP, { port: 0, workers: 1.5 }), { instanceOf: RangeError })
})
