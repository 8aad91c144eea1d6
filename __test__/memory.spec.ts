/** Memory is bounded by construction: 50 slow clients cannot grow RSS past the stream budget. */
import test from 'ava'
import { fork } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { sleep, within } from './helpers.js'

const fixture = fileURLToPath(new URL('./fixtures/slow-clients-server.ts', import.meta.url))

test('with a small maxStreamMemory, 50 slow clients stay within the budget plus a fixed overhead', async (t) => {
  const BUDGET = 4 * 1024 * 1024
  const child = fork(fixture, [], {
    env: { ...process.env, CZ_BUDGET: String(BUDGET) },
    execArgv: ['--import=tsx', '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  const { port } = await within(new Promise<{ port: number }>((r) => child.once('message', (m) => r(m as { port: number }))), 20_000, 'child listen')
  const probe = async () => (await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as { rss: number; stats: { streamMemory: number; streamMemoryLimit: number; streamsActive: number } }
  const before = await probe()
  const sockets: net.Socket[] = []
  for (let i = 0; i < 50; i++) {
    const s = net.connect(port, '127.0.0.1')
    s.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n')
    s.once('data', () => s.pause()) // read one packet, then stop: a slow client
    sockets.push(s)
  }
  t.teardown(() => sockets.forEach((s) => s.destroy()))
  // Let the producers run into backpressure.
  let last = -1
  for (let i = 0; i < 40; i++) {
    await sleep(250)
    const p = await probe()
    if (p.stats.streamsActive === 50 && p.stats.streamMemory === last) break
    last = p.stats.streamMemory
  }
  const after = await probe()
  t.is(after.stats.streamsActive, 50)
  t.is(after.stats.streamMemoryLimit, BUDGET)
  // Each stream may overshoot the budget by at most one 64 KiB chunk.
  t.true(after.stats.streamMemory <= BUDGET + 50 * 64 * 1024, `stream memory ${after.stats.streamMemory}`)
  // Without the budget the rings alone could hold 50 × 8 MiB = 400 MiB.
  const grown = after.rss - before.rss
  t.true(grown < BUDGET + 96 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(1)} MiB`)
  t.log(`RSS grew by ${(grown / 1048576).toFixed(1)} MiB; ring bytes ${after.stats.streamMemory}`)
})

const wsFixture = fileURLToPath(new URL('./fixtures/ws-memory-server.ts', import.meta.url))

test('an idle compressed WebSocket costs no compressor; one with context takeover costs its own, measured', async (t) => {
  const { default: WebSocket } = await import('ws')
  const child = fork(wsFixture, [], { execArgv: ['--import=tsx', '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  t.teardown(() => child.kill('SIGKILL'))
  const { port } = await within(new Promise<{ port: number }>((r) => child.once('message', (m) => r(m as { port: number }))), 20_000, 'child listen')
  const rss = async () => ((await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as { rss: number }).rss
  const N = 200
  const message = JSON.stringify(Array.from({ length: 80 }, (_, i) => ({ id: i, name: `user ${i}`, score: (i * 7919) % 1000 })))
  const clients: InstanceType<typeof WebSocket>[] = []
  t.teardown(() => clients.forEach((c) => c.terminate()))
  /** Opens N clients on `path`, each exchanging one compressible message, then leaves them idle; returns KiB of RSS per socket. */
  const perSocket = async (path: string) => {
    const before = await rss()
    for (let i = 0; i < N; i++) {
      const c = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: { threshold: 0 } })
      clients.push(c)
      await within(new Promise((r, j) => (c.once('open', r), c.once('error', j))), 5000, 'open')
      const echoed = new Promise<string>((r) => c.once('message', (d) => r(d.toString())))
      c.send(message)
      t.is(await within(echoed, 5000, 'echo'), message)
    }
    await sleep(200)
    return ((await rss()) - before) / N / 1024
  }
  const plain = await perSocket('/plain')
  const deflate = await perSocket('/deflate')
  const context = await perSocket('/context')
  t.log(`RSS per idle socket after one message: plain ${plain.toFixed(1)} KiB, deflate ${deflate.toFixed(1)} KiB, context takeover ${context.toFixed(1)} KiB`)
  // Compressing each message alone keeps nothing per socket: within noise of a plain socket.
  t.true(deflate < plain + 24, `deflate ${deflate.toFixed(1)} KiB vs plain ${plain.toFixed(1)} KiB`)
  // With context takeover a socket holds its own compressor and decompressor, bounded.
  t.true(context < 600, `context takeover ${context.toFixed(1)} KiB`)
})
