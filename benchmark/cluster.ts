/** Cross-process broadcast: two processes share topics through Redis (Catzilla's Rust adapter beside socket.io's Redis adapter), against one process. */
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const QUICK = process.argv.includes('--quick')
const ROUNDS = QUICK ? 1 : 3
const CLIENTS = QUICK ? 200 : 1000
const MESSAGES = QUICK ? 100 : 500
const SIZE = 64
const SERVER_CPU = '0'
const CLIENT_CPU = '1'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function log(msg: string) {
  process.stderr.write(`[cluster] ${msg}\n`)
}

/** Installs the peers and builds the load client (as run.ts does). */
function setup() {
  const peers = Object.keys(JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies)
  if (peers.some((p) => !existsSync(join(here, 'node_modules', p)))) spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: here, stdio: 'inherit' })
  spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
  spawnSync('cargo', ['build', '--release', '-p', 'catzilla-loadgen'], { cwd: root, stdio: 'inherit' })
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) throw new Error('redis-server is needed (apt-get install redis-server)')
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

async function waitFor(port: number, path: string) {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}${path}`)).ok) return
    } catch {
      /* not yet */
    }
    await sleep(100)
  }
  throw new Error(`nothing answers on ${port}`)
}

interface Peer {
  name: string
  cmd: string[]
  socketio: boolean
  sse: boolean
}

const PEERS: Peer[] = [
  { name: 'Catzilla', cmd: [process.execPath, '--import', 'tsx', join(here, 'peers', 'catzilla.ts')], socketio: false, sse: true },
  { name: 'socket.io + @socket.io/redis-adapter', cmd: [process.execPath, join(here, 'peers', 'socketio.mjs')], socketio: true, sse: false },
]

async function startProcess(peer: Peer, redisUrl?: string): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort()
  const proc = spawn('taskset', ['-c', SERVER_CPU, ...peer.cmd], {
    env: { ...process.env, PORT: String(port), NODE_ENV: 'production', ...(redisUrl ? { REDIS_URL: redisUrl } : {}) },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  await waitFor(port, '/hello')
  return { port, proc }
}

function loadgen(mode: string, ports: number[], socketio: boolean): { value: number; note?: string } {
  const bin = join(root, 'target', 'release', 'catzilla-loadgen')
  const args = [mode, '--port', String(ports[0]), ...ports.slice(1).flatMap((p) => ['--also', String(p)]), '--clients', String(CLIENTS), '--n', String(MESSAGES), '--size', String(SIZE), ...(socketio ? ['--socketio'] : [])]
  const raise = 'ulimit -n 65536 2>/dev/null || true'
  const r = spawnSync('bash', ['-c', `${raise}; exec taskset -c ${CLIENT_CPU} "$0" "$@"`, bin, ...args], { encoding: 'utf8', timeout: 240_000 })
  try {
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { value: number | null; complete: boolean; note: string }
    return { value: out.complete && out.value !== null ? out.value : NaN, note: out.note || undefined }
  } catch {
    return { value: NaN, note: `loadgen exited ${r.status}: ${(r.stderr ?? '').trim().split('\n').pop()}` }
  }
}

interface Row {
  scenario: string
  peer: string
  values: number[]
  notes: string[]
}

const median = (v: number[]) => {
  const s = v.filter(Number.isFinite).sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!
}

async function main() {
  setup()
  const redisPort = await freePort()
  const redis = spawn('taskset', ['-c', SERVER_CPU, 'redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const redisUrl = `redis://127.0.0.1:${redisPort}`
  await sleep(300)
  const rows: Row[] = []
  const row = (scenario: string, peer: string) => {
    let r = rows.find((x) => x.scenario === scenario && x.peer === peer)
    if (!r) rows.push((r = { scenario, peer, values: [], notes: [] }))
    return r
  }
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const peer of PEERS) {
        const modes = peer.sse ? ['ws-broadcast', 'sse-broadcast'] : ['ws-broadcast']
        for (const mode of modes) {
          const kind = mode === 'ws-broadcast' ? 'WebSocket' : 'SSE'
          // One process, no Redis.
          const one = await startProcess(peer)
          const a = loadgen(mode, [one.port], peer.socketio)
          one.proc.kill('SIGKILL')
          row(`${kind}: one process`, peer.name).values.push(a.value)
          if (a.note) row(`${kind}: one process`, peer.name).notes.push(a.note)
          // Two processes through Redis: half the subscribers on each, the second publishes.
          const [p1, p2] = [await startProcess(peer, redisUrl), await startProcess(peer, redisUrl)]
          await sleep(300)
          const b = loadgen(mode, [p1.port, p2.port], peer.socketio)
          p1.proc.kill('SIGKILL')
          p2.proc.kill('SIGKILL')
          row(`${kind}: two processes through Redis`, peer.name).values.push(b.value)
          if (b.note) row(`${kind}: two processes through Redis`, peer.name).notes.push(b.note)
          log(`round ${round + 1} ${peer.name} ${mode}: one ${a.value.toFixed(0)}, two ${b.value.toFixed(0)} deliveries/s`)
          spawnSync('redis-cli', ['-p', String(redisPort), 'FLUSHALL'], { stdio: 'ignore' })
          await sleep(300)
        }
      }
    }
  } finally {
    redis.kill('SIGKILL')
  }
  const f = (n: number) => (Number.isFinite(n) ? n.toLocaleString('en', { maximumFractionDigits: 0 }) : 'n/a')
  const redisVersion = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.match(/v=(\S+)/)?.[1]
  const lines = [
    '# Broadcast across processes through Redis',
    '',
    `\`npm run bench:cluster\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}, redis-server ${redisVersion}. ${MESSAGES} messages of ${SIZE} B to each of ${CLIENTS.toLocaleString('en')} subscribers, median of ${ROUNDS} rounds. Servers and Redis on CPU ${SERVER_CPU}, the load client (\`catzilla-loadgen\`) on CPU ${CLIENT_CPU}. Two processes: subscribers alternate between them and the second one publishes, so half the deliveries cross Redis and every message goes through it once per process. Catzilla: \`redis: { url }\` (the adapter in its Rust core; a publish is one Lua script, XADD + PUBLISH, pipelined); socket.io 4.8.4 with @socket.io/redis-adapter 8.3.0 on node-redis 4.7.1 (PUBLISH per emit, room fan-out in JS).`,
    '',
    '| scenario | Catzilla (deliveries/s) | socket.io + Redis adapter | Catzilla ÷ socket.io |',
    '|---|---|---|---|',
  ]
  for (const scenario of [...new Set(rows.map((r) => r.scenario))]) {
    const cz = median(row(scenario, PEERS[0]!.name).values)
    const sio = median(rows.find((r) => r.scenario === scenario && r.peer === PEERS[1]!.name)?.values ?? [])
    lines.push(`| ${scenario} | ${f(cz)} | ${Number.isFinite(sio) ? f(sio) : 'n/a (no SSE)'} | ${Number.isFinite(sio) ? `${(cz / sio).toFixed(2)}×` : '—'} |`)
  }
  const notes = rows.filter((r) => r.notes.length).map((r) => `- ${r.peer}, ${r.scenario}: ${[...new Set(r.notes)].join('; ')}`)
  if (notes.length) lines.push('', 'Notes from the load client:', '', ...notes)
  lines.push('')
  if (!QUICK) writeFileSync(join(here, 'CLUSTER.md'), lines.join('\n'))
  console.log(lines.join('\n'))
}

await main()
