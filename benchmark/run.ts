/** Side-by-side benchmark: starts every peer, runs each scenario in alternating rounds, writes RESULTS.md and chart.svg. */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const QUICK = process.argv.includes('--quick')
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',')
/** `--servers=catzilla,node:http` limits the run to some servers (for quick checks; RESULTS.md is not written). */
const SERVERS = process.argv.find((a) => a.startsWith('--servers='))?.slice(10).split(',')

/** Run sizes: quick (~4 min) or full (bounded to ~25 min; the three WebSocket/broadcast scenarios take ~3 of them). */
const SIZE = QUICK
  ? { rounds: 1, seconds: 2, streamBytes: 64 << 20, sseEvents: 200_000, ndjsonRows: 100_000, idleConns: 1000, slowClients: 200, fanoutClients: 200, fanoutMessages: 200 }
  : { rounds: 3, seconds: 5, streamBytes: 256 << 20, sseEvents: 1_000_000, ndjsonRows: 100_000, idleConns: 10_000, slowClients: 1000, fanoutClients: 1000, fanoutMessages: 500 }
/** WebSocket echo connections and the size of every echoed or broadcast message. */
const WS_CONNS = 64
const MESSAGE_BYTES = 64
/** Size of the permessage-deflate rows' JSON-like messages: above every server's 1024-byte compression threshold. */
const DEFLATE_BYTES = 2048

const SERVER_CPU = '0'
const CLIENT_CPU = '1'
/** Deno from its npm package's platform package (the `deno` package has it as an optional dependency). */
const DENO = join(here, 'node_modules', '@deno', `linux-${process.arch === 'arm64' ? 'arm64' : 'x64'}-glibc`, 'deno')

function log(msg: string) {
  process.stderr.write(`[bench] ${msg}\n`)
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}) {
  log(`$ ${cmd} ${args.join(' ')}`)
  execFileSync(cmd, args, { stdio: 'inherit', cwd: opts.cwd ?? root })
}

/** Installs what the run needs, inside the repository only (plus wrk from apt when missing). */
function setup() {
  if (!have('wrk')) {
    const apt = (args: string[]) => (process.getuid?.() === 0 ? sh('apt-get', args) : sh('sudo', ['apt-get', ...args]))
    apt(['update', '-qq'])
    apt(['install', '-y', '-qq', 'wrk'])
  }
  const peers = Object.keys(JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies)
  if (peers.some((p) => !existsSync(join(here, 'node_modules', p)))) sh('npm', ['ci', '--no-audit', '--no-fund'], { cwd: here })
  if (!existsSync(join(here, '.venv', 'bin', 'uvicorn'))) {
    sh('python3', ['-m', 'venv', join(here, '.venv')])
    sh(join(here, '.venv', 'bin', 'pip'), ['install', '-q', '-r', join(here, 'requirements.txt')])
  }
  sh('npm', ['run', 'build'])
  sh('cargo', ['build', '--release', '-p', 'catzilla-server'])
  sh('cargo', ['build', '--release', '-p', 'catzilla-loadgen'])
}

interface Server {
  name: string
  kind: 'ours' | 'peer' | 'ceiling'
  cmd: string[]
  cwd: string
  port: number
  /** Extra environment variables. */
  env?: Record<string, string>
  proc?: ChildProcess
  failed?: string
}

function servers(): Server[] {
  const node = process.execPath
  const py = (bin: string) => join(here, '.venv', 'bin', bin)
  let port = 3300
  const s = (name: string, kind: Server['kind'], cmd: (p: number) => string[], cwd = root, env?: Record<string, string>): Server => {
    const p = ++port
    return { name, kind, cmd: cmd(p), cwd, port: p, env }
  }
  return [
    s('catzilla', 'ours', () => [node, '--import', 'tsx', join(here, 'peers', 'catzilla.ts')]),
    s('rust ceiling', 'ceiling', (p) => [join(root, 'target', 'release', 'catzilla-server'), '--port', String(p)]),
    s('node:http', 'peer', () => [node, join(here, 'peers', 'node-http.mjs')]),
    s('express', 'peer', () => [node, join(here, 'peers', 'express.mjs')]),
    s('fastify', 'peer', () => [node, join(here, 'peers', 'fastify.mjs')]),
    s('hono', 'peer', () => [node, join(here, 'peers', 'hono.mjs')]),
    s('bun', 'peer', () => [join(here, 'node_modules', '.bin', 'bun'), join(here, 'peers', 'bun.mjs')]),
    s('uWebSockets.js', 'peer', () => [node, join(here, 'peers', 'uws.mjs')]),
    s('hyper-express', 'peer', () => [node, join(here, 'peers', 'hyper-express.mjs')]),
    // The platform package's binary itself: `.bin/deno` is the package's bin.cjs (a Node process
    // that spawns Deno) unless its install script ran, and the CPU column must sample Deno.
    s('deno', 'peer', () => [DENO, 'run', '--allow-net', '--allow-env=PORT', join(here, 'peers', 'deno.ts')], here, { DENO_NO_UPDATE_CHECK: '1' }),
    s('fastapi', 'peer', (p) => [py('uvicorn'), 'fastapi_app:app', '--port', String(p), '--log-level', 'warning', '--no-access-log'], join(here, 'peers')),
    s('flask', 'peer', (p) => [py('gunicorn'), '-w', '1', '-b', `127.0.0.1:${p}`, '--log-level', 'warning', 'flask_app:app'], join(here, 'peers')),
    s('socket.io', 'peer', () => [node, join(here, 'peers', 'socketio.mjs')]),
  ]
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Shell prefix that raises the open-file limit for servers and load clients holding many sockets. */
const RAISE_FDS = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true'

async function startServer(s: Server) {
  // Under a raised descriptor limit (the idle row holds 20,000 connections; Deno's default limit
  // failed it with EMFILE); `exec` keeps the server's pid the one measured.
  s.proc = spawn('bash', ['-c', `${RAISE_FDS}; exec taskset -c ${SERVER_CPU} "$@"`, 'server', ...s.cmd], {
    cwd: s.cwd,
    env: { ...process.env, PORT: String(s.port), NODE_ENV: 'production', ...s.env },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  for (let i = 0; i < 100; i++) {
    // A server that exited at once (its port still held by a leftover of an interrupted run) must
    // not pass: the leftover would answer and be measured in its place.
    if (s.proc.exitCode !== null) throw new Error(`${s.name} exited with ${s.proc.exitCode} before it served (is port ${s.port} in use?)`)
    try {
      const r = await fetch(`http://127.0.0.1:${s.port}/hello`)
      if (r.ok) return
    } catch {
      /* not up yet */
    }
    await sleep(200)
  }
  s.failed = 'did not start'
}

/** Stops a server (its whole process tree) and starts it again on the same port. */
async function restartServer(s: Server) {
  s.failed = undefined
  const proc = s.proc!
  const tree = processTree(proc.pid!)
  const exited = proc.exitCode !== null ? Promise.resolve() : new Promise((r) => proc.once('exit', r))
  for (const pid of tree) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      /* already gone */
    }
  }
  await exited
  await sleep(500) // the children (gunicorn's worker) let go of the port too
  try {
    await startServer(s)
  } catch (err) {
    s.failed = String(err).slice(0, 120)
  }
}

/** The fields of /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat after the command name: [0] is the state, [1] the ppid, [11] utime, [12] stime. */
function statFields(path: string): string[] {
  const stat = readFileSync(path, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** Every process's children, found through every process's ppid (this kernel has no /proc/<pid>/task/<tid>/children). */
function childrenOf(): Map<number, number[]> {
  const children = new Map<number, number[]>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const ppid = Number(statFields(`/proc/${d}/stat`)[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)])
    } catch {
      /* process gone */
    }
  }
  return children
}

/** A process and all its descendants (gunicorn has a master and a worker). */
function processTree(pid: number, children = childrenOf()): number[] {
  const tree: number[] = []
  const stack = [pid]
  while (stack.length) {
    const p = stack.pop()!
    tree.push(p)
    stack.push(...(children.get(p) ?? []))
  }
  return tree
}

/** RSS in bytes of a process and all its descendants. */
function treeRss(pid: number): number {
  let total = 0
  for (const p of processTree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))
      if (m) total += Number(m[1]) * 1024
    } catch {
      /* gone */
    }
  }
  return total
}

/** Sockets (distinct inodes) open in a process and all its descendants. */
function treeSockets(pid: number): number {
  const inodes = new Set<string>()
  for (const p of processTree(pid)) {
    try {
      for (const fd of readdirSync(`/proc/${p}/fd`)) {
        try {
          const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${p}/fd/${fd}`))
          if (m) inodes.add(m[1]!)
        } catch {
          /* closed meanwhile */
        }
      }
    } catch {
      /* gone */
    }
  }
  return inodes.size
}

/** Clock ticks per second of utime and stime in /proc's stat files. */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100

/** CPU time used so far, in µs. */
interface CpuTimes {
  /** The main thread (tid == pid) of the process that serves. */
  main: number
  /** Every thread of the server's process tree, those that already exited too. */
  total: number
}

/** Inodes of the sockets listening on a TCP port, from /proc/net/tcp and tcp6. */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>()
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      // local_address is HEXIP:HEXPORT; st 0A is LISTEN; the inode is the tenth field.
      if (f.length > 9 && f[3] === '0A' && parseInt(f[1]!.split(':')[1]!, 16) === port) inodes.add(f[9]!)
    }
  }
  return inodes
}

/** Whether a process has one of these sockets open. */
function holdsSocket(pid: number, inodes: Set<string>): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return inodes.has(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '')
      } catch {
        return false
      }
    })
  } catch {
    return false
  }
}

/**
 * CPU time of a server so far, from /proc; undefined when /proc cannot be read. The process that
 * serves is the spawned one (`taskset` execs the server, so its pid is the server's) or, below a
 * launcher, the deepest descendant that holds the listening socket (gunicorn's worker under its
 * master, node under an npx or tsx wrapper): not just any child, since tsx keeps an esbuild
 * process beside the server.
 */
function cpuTimes(pid: number, port: number): CpuTimes | undefined {
  try {
    const children = childrenOf()
    const inodes = listeningInodes(port)
    let server = pid
    for (;;) {
      const kid = children.get(server)?.find((k) => holdsSocket(k, inodes))
      if (kid === undefined) break
      server = kid
    }
    const ticks = (f: string[]) => Number(f[11]) + Number(f[12]) // utime + stime
    const main = ticks(statFields(`/proc/${server}/task/${server}/stat`))
    let total = 0
    // /proc/<pid>/stat sums all the threads of a process, the exited ones too: unlike a sum over
    // /proc/<pid>/task/*/stat, it does not lose a helper thread that ends during the window.
    for (const p of processTree(pid, children)) total += ticks(statFields(`/proc/${p}/stat`))
    const us = 1e6 / CLK_TCK
    return Number.isFinite(main) && Number.isFinite(total) ? { main: main * us, total: total * us } : undefined
  } catch {
    return undefined
  }
}

interface Sample {
  value: number
  p50?: number
  p99?: number
  note?: string
  /** Requests or messages completed in the measured window (for the CPU column). */
  count?: number
  /** CPU µs per request or message over the measured window. */
  cpu?: CpuTimes
}

function client(args: string[], timeoutMs: number): string {
  const r = spawnSync('taskset', ['-c', CLIENT_CPU, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 24 })
  if (r.error) throw r.error
  return r.stdout
}

function wrk(port: number, path: string): Sample {
  const out = client(['wrk', '-t1', '-c64', `-d${SIZE.seconds}s`, '--latency', `http://127.0.0.1:${port}${path}`], (SIZE.seconds + 30) * 1000)
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN)
  const unit = (v: string, u: string) => Number(v) * (u === 'ms' ? 1000 : u === 's' ? 1e6 : 1)
  const p = (q: string) => {
    const m = new RegExp(`\\s${q}%\\s+([\\d.]+)(us|ms|s)`).exec(out)
    return m ? unit(m[1]!, m[2]!) : undefined
  }
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(out)
  const count = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN)
  return { value: rps, p50: p('50'), p99: p('99'), note: errors ? errors[0] : undefined, count }
}

function streamCount(port: number, path: string, mode: string, expect: { bytes?: number; events?: number }, per: 'bytes' | 'events'): Sample {
  const out = client([process.execPath, join(here, 'clients', 'stream-count.mjs'), String(port), path, mode], 300_000)
  const r = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { bytes: number; events: number; seconds: number; complete: boolean }
  const ok =
    r.complete && (expect.bytes === undefined || r.bytes >= expect.bytes) && (expect.events === undefined || r.events === expect.events)
  const value = per === 'bytes' ? r.bytes / r.seconds / 1048576 : r.events / r.seconds
  return { value: ok ? value : NaN, note: ok ? undefined : `incomplete: ${r.bytes} bytes, ${r.events} messages` }
}

/** Downloads `path` with curl (native, so the client is not the bottleneck) and reports MiB/s; `NaN` unless it got 200 and all `bytes`. */
function curlBytes(port: number, path: string, bytes: number): Sample {
  const out = client(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', `http://127.0.0.1:${port}${path}`], 300_000)
  const [status, size, seconds] = out.trim().split(' ').map(Number)
  const ok = status === 200 && size! >= bytes && seconds! > 0
  return { value: ok ? size! / seconds! / 1048576 : NaN, note: ok ? undefined : `curl: status ${status}, ${size} of ${bytes} bytes` }
}

/** WebSocket echo: the loadgen reports messages/s over its timed window of `--seconds` (plus the last round trip), so messages ≈ rate × seconds. */
function wsEcho(s: Server, args: string[]): Sample {
  const r = loadgen(s, ['ws-echo', ...args, '--seconds', String(SIZE.seconds)])
  return { ...r, count: r.value * SIZE.seconds }
}

/** Runs benchmark/loadgen (`catzilla-loadgen`) against a server; socket.io gets its own framing. */
function loadgen(s: Server, args: string[]): Sample {
  const bin = join(root, 'target', 'release', 'catzilla-loadgen')
  const all = [...args, '--port', String(s.port), ...(s.name === 'socket.io' ? ['--socketio'] : [])]
  const r = spawnSync('bash', ['-c', `${RAISE_FDS}; exec taskset -c ${CLIENT_CPU} "$0" "$@"`, bin, ...all], { encoding: 'utf8', timeout: 240_000, maxBuffer: 1 << 20 })
  if (r.error) throw r.error
  let out: { value: number | null; p50: number | null; p99: number | null; complete: boolean; note: string }
  try {
    out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '')
  } catch {
    return { value: NaN, note: `loadgen exited ${r.status}: ${(r.stderr ?? '').trim().split('\n').pop()?.slice(0, 120)}` }
  }
  const value = out.complete && out.value !== null ? out.value : NaN
  return { value, p50: out.p50 ?? undefined, p99: out.p99 ?? undefined, note: out.note || undefined }
}

/**
 * Holds `n` connections, then `n` more, and reports what each of the second `n` added to the
 * server's RSS: the marginal cost of a connection. The first batch absorbs one-time growth (V8's
 * young generation, a new malloc arena, JIT) that a slope from zero would count; its own slope is
 * kept in the note. The rows run on a freshly started server (`fresh`), so no memory freed by the
 * rows before is reused.
 */
async function holdAndMeasure(s: Server, n: number, mode: 'idle' | 'slow'): Promise<Sample> {
  const pid = s.proc!.pid!
  const base = treeRss(pid)
  const baseSockets = treeSockets(pid)
  const holder = spawn('bash', ['-c', `${RAISE_FDS}; exec taskset -c ${CLIENT_CPU} "${process.execPath}" "${join(here, 'clients', 'hold-connections.mjs')}" ${s.port} ${n} ${mode}`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  // Lines from the holder, in order: a line may arrive before it is awaited.
  let buf = ''
  let waiting: (() => void) | undefined
  holder.stdout!.on('data', (d) => {
    buf += d
    waiting?.()
  })
  const nextLine = () =>
    new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve(buf || 'timeout'), 120_000)
      const take = () => {
        const at = buf.indexOf('\n')
        if (at < 0) return
        clearTimeout(timer)
        waiting = undefined
        const line = buf.slice(0, at)
        buf = buf.slice(at + 1)
        resolve(line)
      }
      waiting = take
      take()
    })
  const settle = mode === 'slow' ? 3000 : 1000
  const held = (line: string) => Number(/ready (\d+)/.exec(line)?.[1] ?? 0)
  const dropped = (line: string) => Number(/dropped (\d+)/.exec(line)?.[1] ?? 0)
  const mib = (b: number) => (b / 1048576).toFixed(0)
  const perConn = (from: number, to: number, count: number) => Math.max(0, to - from) / Math.max(1, count) / 1024
  const stop = async () => {
    holder.stdin!.end()
    holder.kill()
    await sleep(1000)
  }
  const line1 = await nextLine()
  const first = held(line1)
  await sleep(settle)
  const rss1 = treeRss(pid)
  const accepted1 = treeSockets(pid) - baseSockets
  // A server that did not hold every connection (Flask serves one stream at a time) has no
  // comparable figure: report n/a with the reason instead of a flattering RSS. 99 % is enough: a
  // few connects may fail on the client's side.
  // Established from the client's side is not accepted: a server that never accepts (Flask's sync
  // worker, busy with nothing) leaves them in the kernel's accept queue at no RSS of its own.
  // A server that closes held connections (uWebSockets.js closes idle HTTP connections after 10 s,
  // sooner than 10,000 are opened) holds fewer than it was given: no comparable figure either.
  const check = (established: number, accepted: number, want: number, note: string, closed: number): Sample | undefined => {
    if (established < want * 0.99) return { value: NaN, note: `${note}, not comparable` }
    if (closed > want * 0.01) return { value: NaN, note: `${note}; the server closed ${closed} of them while they were held (an idle timeout), not comparable` }
    if (accepted < want * 0.99) return { value: NaN, note: `${note}; the server accepted ${Math.max(0, accepted)} (the rest wait in the kernel's accept queue), not comparable` }
    return undefined
  }
  const early = check(first, accepted1, n, `${first}/${n} held; RSS ${mib(base)} → ${mib(rss1)} MiB`, dropped(line1))
  if (early) {
    await stop()
    return early
  }
  holder.stdin!.write('more\n')
  const line2 = await nextLine()
  const second = held(line2)
  await sleep(settle)
  const rss2 = treeRss(pid)
  const accepted2 = treeSockets(pid) - baseSockets
  await stop()
  // The row's figure is the second batch's share (what one more client costs once the process
  // is warm); the first batch's and the average over all of them are in the note, since the
  // second batch reuses what the first one's start left free, more for some servers than others.
  const note = `${second}/${2 * n} held; RSS ${mib(base)} → ${mib(rss1)} → ${mib(rss2)} MiB; the first ${n.toLocaleString('en')}: ${perConn(base, rss1, first).toFixed(2)} KiB each; all ${second.toLocaleString('en')}: ${perConn(base, rss2, second).toFixed(2)} KiB each`
  return check(second, accepted2, 2 * n, note, dropped(line2)) ?? { value: perConn(rss1, rss2, second - first), note }
}

interface Scenario {
  id: string
  title: string
  unit: string
  higherIsBetter: boolean
  rounds: number
  /** The servers that take part; default: all but the WebSocket-only socket.io. */
  servers?: string[]
  /** Header of a p50 / p99 column (values in µs, shown in ms). */
  latency?: string
  /** Header of a CPU-per-request column (µs, main thread / total); the run must set Sample.count. */
  cpu?: string
  /** A line under the table: who is not measured and why, what bounds the figures. */
  comment?: string
  /**
   * Restart each server just before its turn: the memory rows measure a process that has served
   * nothing yet, not one whose allocator holds what the rows before freed (reused, it made
   * node:http's stalled streams look free in one run and cost 23 KiB each in another).
   */
  fresh?: boolean
  run: (s: Server) => Sample | Promise<Sample>
}

const SSE_FANOUT = ['catzilla', 'rust ceiling', 'node:http', 'express', 'fastify', 'hono', 'bun', 'uWebSockets.js', 'hyper-express', 'deno', 'fastapi']
const WEBSOCKETS = ['catzilla', 'rust ceiling', 'node:http', 'bun', 'uWebSockets.js', 'hyper-express', 'deno', 'socket.io', 'fastapi']
const takesPart = (sc: Scenario, s: Server) => (sc.servers ? sc.servers.includes(s.name) : s.name !== 'socket.io')
const fanout = `${SIZE.fanoutMessages.toLocaleString('en')} messages of ${MESSAGE_BYTES} B to each of ${SIZE.fanoutClients.toLocaleString('en')} clients`
const fanoutArgs = ['--clients', String(SIZE.fanoutClients), '--n', String(SIZE.fanoutMessages), '--size', String(MESSAGE_BYTES)]
const noWebSocket = 'Express, Fastify and Hono have no WebSocket server of their own (they would measure the `ws` package again, as node:http does); Flask on a sync gunicorn worker has none.'
/** The permessage-deflate rows: servers with compressed routes `/ws-echo-z` and `/ws-sub-z`. */
const DEFLATE = ['catzilla', 'node:http', 'bun', 'uWebSockets.js', 'hyper-express', 'fastapi']
const deflateKiB = `${DEFLATE_BYTES / 1024} KiB JSON`
const deflateHow = `Every server compresses each message alone at zlib level 6: the load client offers \`permessage-deflate; client_no_context_takeover; server_no_context_takeover\` and fails the run if the extension is not accepted or a message of 1024 bytes or more arrives uncompressed. Catzilla: \`compression: true\` (a topic message is compressed once per publish); node:http: the \`ws\` package's \`perMessageDeflate\` (once per socket, on zlib's thread pool); Bun: \`perMessageDeflate: true\` and \`compress\` on each send and publish (uWS's shared compressor, libdeflate); uWebSockets.js and hyper-express: \`compression: SHARED_COMPRESSOR\` and the compress flag on each send and publish (uWS's shared compressor on zlib at its default level 6: this uWS.js build has no libdeflate); FastAPI: uvicorn's default permessage-deflate (once per socket). The client sends messages compressed before the clock starts, and inflates and checks all it receives. Not measured: ${noWebSocket} The Rust ceiling has no compressed routes; Deno's \`Deno.upgradeWebSocket\` has no permessage-deflate; socket.io compresses with the \`ws\` package, as node:http does (and its event framing would escape the JSON).`

/** The CPU column: what is sampled and what the main thread is for each server. */
const cpuHow = (per: string) =>
  `CPU µs/${per}: the server's CPU time (utime + stime from \`/proc\` in ticks of 1/${CLK_TCK} s, sampled just before and just after the measured load, so connection setup is in it) ÷ the ${per === 'req' ? 'requests' : 'messages echoed'} in that window${per === 'req' ? '' : ' (≈ rate × seconds)'}; n/a when \`/proc\` cannot be read. Main thread = the thread whose tid is the server process's pid: the JS thread for every Node server (Catzilla's Rust core and its I/O run on their own threads, counted in total only), and for Bun and Deno, whose HTTP and WebSocket servers run on their JS thread too; for uWebSockets.js and hyper-express the uWS event loop is Node's main thread, so it does all the I/O as well; Python's interpreter thread for FastAPI (uvicorn) and Flask (the gunicorn worker; total adds the master); for the Rust ceiling the thread parked in tokio's \`block_on\` (near 0: its workers serve, counted in total). Total = every thread of the server's processes (V8's GC and compiler threads, libuv's pool, tokio's workers), those that exited during the window too. The load generators run on the other core and are not counted.`

const scenarios: Scenario[] = [
  { id: 'hello', title: 'Plaintext hello', unit: 'req/s', higherIsBetter: true, rounds: SIZE.rounds, latency: 'p50 / p99 latency', cpu: 'CPU µs/req (main thread / total)', comment: cpuHow('req'), run: (s) => wrk(s.port, '/hello') },
  { id: 'json', title: 'JSON with a path and a query parameter', unit: 'req/s', higherIsBetter: true, rounds: SIZE.rounds, latency: 'p50 / p99 latency', cpu: 'CPU µs/req (main thread / total)', comment: 'CPU µs/req: measured as in the plaintext hello row.', run: (s) => wrk(s.port, '/users/42?q=catzilla') },
  {
    id: 'stream',
    title: `${SIZE.streamBytes >> 20} MiB stream in 16 KiB chunks from an async generator`,
    unit: 'MiB/s',
    higherIsBetter: true,
    rounds: SIZE.rounds,
    comment: 'Read by `curl -o /dev/null` on the client CPU: a native client, since a Node client tops out near 1.2 GB/s here and made every server look alike. The row checks the status and that every byte arrived.',
    run: (s) => curlBytes(s.port, `/stream?bytes=${SIZE.streamBytes}&chunk=16384`, SIZE.streamBytes),
  },
  {
    id: 'sse',
    title: `${SIZE.sseEvents.toLocaleString('en')} small SSE events (~60 B) to one client`,
    unit: 'events/s',
    higherIsBetter: true,
    rounds: SIZE.rounds,
    run: (s) => streamCount(s.port, `/sse?n=${SIZE.sseEvents}`, 'sse', { events: SIZE.sseEvents }, 'events'),
  },
  {
    id: 'ndjson',
    title: `NDJSON, ${SIZE.ndjsonRows.toLocaleString('en')} rows`,
    unit: 'rows/s',
    higherIsBetter: true,
    rounds: SIZE.rounds,
    run: (s) => streamCount(s.port, `/ndjson?n=${SIZE.ndjsonRows}`, 'line', { events: SIZE.ndjsonRows }, 'events'),
  },
  {
    id: 'sse-broadcast',
    title: `SSE broadcast: ${fanout}`,
    unit: 'deliveries/s',
    higherIsBetter: true,
    rounds: SIZE.rounds,
    servers: SSE_FANOUT,
    latency: 'p50 / p99 time until a client has all',
    comment: `Not measured: Flask (one sync gunicorn worker serves one stream at a time, so it cannot hold ${SIZE.fanoutClients.toLocaleString('en')} subscribers); socket.io (WebSocket scenarios only).`,
    run: (s) => loadgen(s, ['sse-broadcast', ...fanoutArgs]),
  },
  {
    id: 'ws-echo',
    title: `WebSocket echo, ${WS_CONNS} connections, ${MESSAGE_BYTES} B messages, one in flight per connection`,
    unit: 'messages/s',
    higherIsBetter: true,
    rounds: SIZE.rounds,
    servers: WEBSOCKETS,
    latency: 'p50 / p99 round trip',
    cpu: 'CPU µs/message (main thread / total)',
    comment: `Not measured: ${noWebSocket} The load client has one core: figures near the Rust ceiling's are bounded by the client, not the server. ${cpuHow('message')}`,
    run: (s) => wsEcho(s, ['--conns', String(WS_CONNS), '--size', String(MESSAGE_BYTES)]),
  },
  {
    id: 'ws-broadcast',
    title: `WebSocket broadcast: ${fanout}`,
    unit: 'deliveries/s',
    higherIsBetter: true,
    rounds: SIZE.rounds,
    servers: WEBSOCKETS,
    latency: 'p50 / p99 time until a client has all',
    comment: `Not measured: ${noWebSocket}`,
    run: (s) => loadgen(s, ['ws-broadcast', ...fanoutArgs]),
  },
  {
    id: 'ws-echo-deflate',
    title: `WebSocket echo with permessage-deflate, ${WS_CONNS} connections, ${deflateKiB} messages, one in flight per connection`,
    unit: 'messages/s',
    higherIsBetter: true,
    rounds: SIZE.rounds,
    servers: DEFLATE,
    latency: 'p50 / p99 round trip',
    cpu: 'CPU µs/message (main thread / total)',
    comment: `${deflateHow} CPU µs/message: measured as in the WebSocket echo row.`,
    run: (s) => wsEcho(s, ['--deflate', '--conns', String(WS_CONNS), '--size', String(DEFLATE_BYTES)]),
  },
  {
    id: 'ws-broadcast-deflate',
    title: `WebSocket broadcast with permessage-deflate: ${SIZE.fanoutMessages.toLocaleString('en')} messages of ${deflateKiB} to each of ${SIZE.fanoutClients.toLocaleString('en')} clients`,
    unit: 'deliveries/s',
    higherIsBetter: true,
    rounds: SIZE.rounds,
    servers: DEFLATE,
    latency: 'p50 / p99 time until a client has all',
    comment: deflateHow,
    run: (s) => loadgen(s, ['ws-broadcast', '--deflate', '--clients', String(SIZE.fanoutClients), '--n', String(SIZE.fanoutMessages), '--size', String(DEFLATE_BYTES)]),
  },
  {
    id: 'mem-idle',
    title: `RSS per idle keep-alive connection (${SIZE.idleConns.toLocaleString('en')} more after ${SIZE.idleConns.toLocaleString('en')} held)`,
    unit: 'KiB per connection',
    higherIsBetter: false,
    rounds: 1,
    fresh: true,
    comment: 'uWebSockets.js and hyper-express (on uWS) close an idle HTTP connection after 10 s (a constant of uWS, not an option), before the holder has opened them all: they hold fewer than they were given, so their rows are n/a with the count they closed.',
    run: (s) => holdAndMeasure(s, SIZE.idleConns, 'idle'),
  },
  {
    id: 'mem-slow',
    title: `RSS per stalled stream client (${SIZE.slowClients.toLocaleString('en')} more after ${SIZE.slowClients.toLocaleString('en')} held, each stopped reading after its first packet)`,
    unit: 'KiB per connection',
    higherIsBetter: false,
    // A stalled stream's cost depends on where each stream stopped (how much the kernel took,
    // whether hyper's last write was short): one round read 64 to 127 KiB for the same code, so
    // this row is a median of fresh rounds too.
    rounds: SIZE.rounds,
    fresh: true,
    run: (s) => holdAndMeasure(s, SIZE.slowClients, 'slow'),
  },
]

const median = (xs: number[]) => {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b)
  if (!v.length) return NaN
  const m = v.length >> 1
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2
}

const fmt = (x: number | undefined, digits = 0) =>
  x === undefined || Number.isNaN(x) ? 'n/a' : x >= 100 ? Math.round(x).toLocaleString('en') : x.toFixed(digits || 2)

function version(cmd: string[], cwd = root): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd, encoding: 'utf8' })
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0]
  return text || 'unknown'
}

/** Name and version of an installed peer package (benchmark/node_modules); 'unknown' when absent. */
function pkg(dir: string): { name: string; version: string } {
  try {
    return JSON.parse(readFileSync(join(here, 'node_modules', dir, 'package.json'), 'utf8'))
  } catch {
    return { name: 'unknown', version: 'unknown' }
  }
}

/** Where uWebSockets.js, hyper-express and Deno come from: none installs from npm under its own name as it is. */
function provenance(): string {
  let commit = 'unknown'
  try {
    commit = readFileSync(join(here, 'node_modules', 'uWebSockets.js', 'source_commit'), 'utf8').trim().slice(0, 10)
  } catch {
    /* not installed */
  }
  const uws = pkg('uWebSockets.js')
  const binary = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`
  return (
    `uWebSockets.js is \`${uws.name}@${uws.version}\` under the alias \`uWebSockets.js\`: an npm republish of the uWS.js v20 binaries, built from uWS.js commit ${commit} (uWS.js itself is published on GitHub only); Node ${process.version} loads its \`${binary}\` (its binaries for Node 22 and later need glibc 2.38). ` +
    `hyper-express ${pkg('hyper-express').version} (the newest release for Node 20; 6.14.x ignores a client that leaves after the response head, and its next write to that response throws) runs on that same package, set by \`overrides\` in place of its GitHub dependency. ` +
    `${version([DENO, '--version']).replace(/ \(.*/, '')} is the binary of the \`deno\` npm package's platform package \`@deno/linux-x64-glibc\`, started directly (its install script is not needed).`
  )
}

function svgChart(results: Map<string, Map<string, number>>, list: Server[]): string {
  const rows: string[] = []
  const width = 760
  let y = 30
  const ours = list.find((s) => s.kind === 'ours')!.name
  for (const sc of scenarios) {
    const r = results.get(sc.id)
    if (!r) continue
    const vals = list.map((s) => [s.name, r.get(s.name) ?? NaN] as const).filter(([, v]) => !Number.isNaN(v))
    const best = sc.higherIsBetter ? Math.max(...vals.map(([, v]) => v)) : Math.min(...vals.map(([, v]) => v))
    rows.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">${sc.title} (${sc.unit}, ${sc.higherIsBetter ? 'higher' : 'lower'} is better)</text>`)
    y += 8
    for (const [name, v] of vals) {
      const score = sc.higherIsBetter ? v / best : best / v
      const w = Math.max(2, Math.round(score * 480))
      const color = name === ours ? '#d9480f' : name === 'rust ceiling' ? '#868e96' : '#4263eb'
      rows.push(`<text x="150" y="${y + 12}" font-size="11" text-anchor="end">${name}</text>`)
      rows.push(`<rect x="156" y="${y + 2}" width="${w}" height="13" fill="${color}"/>`)
      rows.push(`<text x="${160 + w}" y="${y + 12}" font-size="11">${fmt(v)}</text>`)
      y += 17
    }
    y += 20
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${rows.join('')}</svg>\n`
}

/** One row per scenario: Catzilla, the best peer, and the ratios that matter. */
function summaryTable(medians: Map<string, Map<string, number>>, list: Server[], ours: string): string {
  const rows = ['| scenario | Catzilla | best peer | vs best peer | vs node:http | share of Rust ceiling |', '|---|---|---|---|---|---|']
  for (const sc of scenarios) {
    const med = medians.get(sc.id)
    if (!med) continue
    const o = med.get(ours) ?? NaN
    const peers = list.filter((s) => s.kind === 'peer').map((s) => [s.name, med.get(s.name) ?? NaN] as const).filter(([, v]) => !Number.isNaN(v))
    if (!peers.length) continue
    const best = peers.reduce((a, b) => (sc.higherIsBetter ? (b[1] > a[1] ? b : a) : b[1] < a[1] ? b : a))
    const ratio = (peer: number) => (sc.higherIsBetter ? o / peer : peer / o)
    const ceiling = med.get('rust ceiling')
    const share = ceiling === undefined ? NaN : sc.higherIsBetter ? o / ceiling : ceiling / o
    const nodeHttp = med.get('node:http')
    rows.push(
      `| ${sc.title} | ${fmt(o)} ${sc.unit} | ${best[0]} (${fmt(best[1])}) | ${fmt(ratio(best[1]), 2)}× | ${nodeHttp === undefined ? 'n/a' : `${fmt(ratio(nodeHttp), 2)}×`} | ${Number.isNaN(share) ? 'n/a' : `${Math.round(share * 100)}%`} |`,
    )
  }
  return rows.join('\n')
}

async function main() {
  setup()
  const list = servers().filter((s) => SERVERS === undefined || SERVERS.includes(s.name))
  const t0 = Date.now()
  for (const s of list) {
    await startServer(s)
    log(`${s.name}: ${s.failed ?? `up on ${s.port}`}`)
  }
  const live = list.filter((s) => !s.failed)
  const samples = new Map<string, Map<string, Sample[]>>()
  try {
    for (const sc of scenarios) {
      if (ONLY && !ONLY.includes(sc.id)) continue
      const per = new Map<string, Sample[]>()
      samples.set(sc.id, per)
      for (let round = 0; round < sc.rounds; round++) {
        const present = live.filter((s) => takesPart(sc, s))
        const order = round % 2 === 0 ? present : [...present].reverse()
        for (const s of order) {
          if (sc.fresh) await restartServer(s)
          if (s.failed) {
            per.set(s.name, [...(per.get(s.name) ?? []), { value: NaN, note: `restart: ${s.failed}` }])
            continue
          }
          if (sc.id === 'hello' || sc.id === 'json') wrk(s.port, sc.id === 'hello' ? '/hello' : '/users/1') // warm-up
          let sample: Sample
          const before = sc.cpu ? cpuTimes(s.proc!.pid!, s.port) : undefined
          try {
            sample = await sc.run(s)
          } catch (err) {
            sample = { value: NaN, note: String(err).slice(0, 120) }
          }
          const after = before ? cpuTimes(s.proc!.pid!, s.port) : undefined
          if (before && after && sample.count! > 0) {
            // utime and stime are each cut to whole ticks, so the thread's and the process's
            // readings can differ by a tick or two: the main thread cannot have used more than all.
            const total = after.total - before.total
            sample.cpu = { main: Math.min(after.main - before.main, total) / sample.count!, total: total / sample.count! }
          }
          per.set(s.name, [...(per.get(s.name) ?? []), sample])
          const cpu = sample.cpu ? `, CPU ${fmt(sample.cpu.main, 2)} / ${fmt(sample.cpu.total, 2)} µs` : ''
          log(`${sc.id} round ${round + 1} ${s.name}: ${fmt(sample.value)} ${sc.unit}${cpu}${sample.note ? ` (${sample.note})` : ''}`)
        }
      }
    }
  } finally {
    for (const s of list) s.proc?.kill('SIGKILL')
  }
  const minutes = ((Date.now() - t0) / 60000).toFixed(1)

  if (SERVERS !== undefined || ONLY !== undefined) return // partial runs are for exploration only
  // Report.
  const ours = list.find((s) => s.kind === 'ours')!
  const medians = new Map<string, Map<string, number>>()
  const out: string[] = []
  const cpu = cpus()[0]?.model ?? 'unknown CPU'
  out.push('# Benchmark results', '')
  out.push(`Generated by \`npm run bench${QUICK ? ':quick' : ''}\` on ${new Date().toISOString().slice(0, 10)} in ${minutes} min.`, '')
  out.push(`Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${version(['uname', '-sr'])}.`)
  out.push(`Servers pinned to CPU ${SERVER_CPU} and load generators to CPU ${CLIENT_CPU} (\`taskset\`); every server runs for the whole run (the memory rows restart it just before its turn) and the rounds alternate their order; each figure is the median of ${SIZE.rounds} round(s) (idle memory: 1), with min–max. Ratios compare medians from this same run.`, '')
  out.push(
    `Versions: Node ${process.version}, Bun ${version([join(here, 'node_modules', '.bin', 'bun'), '--version'])}, ${version([join(here, '.venv', 'bin', 'python'), '--version'])}, ${version(['wrk', '-v']).replace(/ \[.*/, '')}; peers as pinned in \`benchmark/package.json\` and \`benchmark/requirements.txt\`. ${provenance()}`,
    '',
  )
  out.push('Commands: HTTP request rates with `wrk -t1 -c64 -d' + SIZE.seconds + 's --latency`; the byte stream with `curl` (native), the other streams with `node benchmark/clients/stream-count.mjs` (one client, checks every byte/event arrived); WebSocket echo and the broadcasts with `catzilla-loadgen` (`benchmark/loadgen`, Rust on tokio and tokio-tungstenite: checks every echo, and every broadcast message\'s order and size at every client; a broadcast is timed from the `GET /publish` that sends all messages until the last client has them all, so deliveries/s = clients × messages ÷ that time); memory with `node benchmark/clients/hold-connections.mjs` and the server process tree\'s VmRSS, on each server restarted just before its turn (so no row before it left freed memory in its allocator for the connections to reuse): N connections are held, then N more, and the figure is (RSS with 2N − RSS with N) ÷ N, the marginal cost of a connection; the first N also pay one-time growth (V8\'s young generation, a new malloc arena, JIT). The notes give the three totals and the first N\'s own slope.', '')
  out.push('Ratio = Catzilla ÷ peer for throughput, peer ÷ Catzilla for memory: above 1 means Catzilla is better.', '')
  for (const sc of scenarios) {
    const per = samples.get(sc.id)
    if (!per) continue
    const med = new Map<string, number>()
    medians.set(sc.id, med)
    for (const [name, xs] of per) med.set(name, median(xs.map((x) => x.value)))
    const oursMed = med.get(ours.name) ?? NaN
    out.push(`## ${sc.title}`, '')
    const latency = sc.latency !== undefined
    out.push(`| server | ${sc.unit} (median) | min–max | ${latency ? `${sc.latency} | ` : ''}${sc.cpu ? `${sc.cpu} | ` : ''}ratio | notes |`)
    out.push(`|---|---|---|${latency ? '---|' : ''}${sc.cpu ? '---|' : ''}---|---|`)
    for (const s of live.filter((x) => per.has(x.name))) {
      const xs = per.get(s.name) ?? []
      const vals = xs.map((x) => x.value).filter((v) => !Number.isNaN(v))
      const m = med.get(s.name) ?? NaN
      const ratio = s.name === ours.name ? '—' : sc.higherIsBetter ? oursMed / m : m / oursMed
      const lat = latency ? `${fmt(median(xs.map((x) => x.p50 ?? NaN)) / 1000, 2)} / ${fmt(median(xs.map((x) => x.p99 ?? NaN)) / 1000, 2)} ms | ` : ''
      const cpu = sc.cpu ? `${fmt(median(xs.map((x) => x.cpu?.main ?? NaN)), 2)} / ${fmt(median(xs.map((x) => x.cpu?.total ?? NaN)), 2)} | ` : ''
      const notes = [...new Set(xs.map((x) => x.note).filter(Boolean))].join('; ')
      const name = s.kind === 'ours' ? `**${s.name}**` : s.name
      out.push(`| ${name} | ${fmt(m)} | ${vals.length ? `${fmt(Math.min(...vals))}–${fmt(Math.max(...vals))}` : 'n/a'} | ${lat}${cpu}${typeof ratio === 'number' ? `${fmt(ratio, 2)}×` : ratio} | ${notes} |`)
    }
    out.push('')
    if (sc.comment) out.push(sc.comment, '')
  }
  const summary = summaryTable(medians, live, ours.name)
  out.splice(out.indexOf('Ratio = Catzilla ÷ peer for throughput, peer ÷ Catzilla for memory: above 1 means Catzilla is better.') + 2, 0, '## Summary', '', summary, '')
  writeFileSync(join(here, 'RESULTS.md'), out.join('\n'))
  const readme = join(root, 'README.md')
  const text = readFileSync(readme, 'utf8')
  const start = text.indexOf('<!-- bench:start -->')
  const end = text.indexOf('<!-- bench:end -->')
  if (start !== -1 && end > start) {
    const stamp = `Last ${QUICK ? 'quick' : 'full'} run: ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpu}.`
    writeFileSync(readme, `${text.slice(0, start)}<!-- bench:start -->\n${stamp}\n\n${summary}\n${text.slice(end)}`)
  }
  writeFileSync(join(here, 'chart.svg'), svgChart(medians, live))
  log(`wrote benchmark/RESULTS.md and benchmark/chart.svg (${minutes} min)`)
}

await main()
