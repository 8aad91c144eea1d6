/** Worker-thread scaling: hello and JSON with 1 and 2 JS threads, CPU per request on each kind of thread, and the model it gives for more cores. */
import { spawn, spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const SECONDS = Number(process.env.SECONDS ?? 5)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** CPU µs so far of every thread of `pid`, grouped: the main JS thread, worker JS threads, tokio, the rest. */
function threadCpu(pid: number): Record<'main' | 'workers' | 'tokio' | 'other', number> {
  const out = { main: 0, workers: 0, tokio: 0, other: 0 }
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const us = ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim()
      const kind = tid === String(pid) ? 'main' : name.startsWith('cz-worker') ? 'workers' : name.startsWith('tokio') ? 'tokio' : 'other'
      out[kind] += us
    } catch {
      /* the thread ended */
    }
  }
  return out
}

function wrk(cpu: string, port: number, path: string): { rps: number; count: number } {
  const r = spawnSync('taskset', ['-c', cpu, 'wrk', '-t1', '-c64', `-d${SECONDS}s`, `http://127.0.0.1:${port}${path}`], { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 })
  if (/Non-2xx|Socket errors/.test(r.stdout)) throw new Error(`wrk saw errors:\n${r.stdout}`)
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]), count: Number(/(\d+) requests in/.exec(r.stdout)?.[1]) }
}

interface Run {
  mode: 'pinned' | 'shared'
  workers: number
  placement: string
  path: string
  rps: number
  /** CPU µs per request by kind of thread. */
  cpu: Record<'main' | 'workers' | 'tokio' | 'other', number>
}

async function measure(mode: Run['mode'], workers: number, serverCpus: string, clientCpus: string, path: string, port: number): Promise<Run> {
  const proc = spawn('taskset', ['-c', serverCpus, process.execPath, '--import', 'tsx', join(here, 'peers', 'catzilla.ts')], {
    env: { ...process.env, PORT: String(port), CZ_WORKERS: String(workers), NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d) => String(d).includes('ready') && resolve())
    proc.once('exit', (c) => reject(new Error(`server exited ${c}`)))
  })
  // The node process is the child of taskset's exec: the same pid.
  const pid = proc.pid!
  try {
    wrk(clientCpus, port, path) // warm-up (JIT, connection pools)
    const best: Run[] = []
    for (let r = 0; r < ROUNDS; r++) {
      const before = threadCpu(pid)
      const { rps, count } = wrk(clientCpus, port, path)
      const after = threadCpu(pid)
      const cpu = { main: 0, workers: 0, tokio: 0, other: 0 }
      for (const k of Object.keys(cpu) as (keyof typeof cpu)[]) cpu[k] = (after[k] - before[k]) / count
      best.push({ mode, workers, placement: `server CPUs ${serverCpus}, wrk CPUs ${clientCpus}`, path, rps, cpu })
    }
    return best.sort((a, b) => b.rps - a.rps)[0]!
  } finally {
    proc.kill('SIGINT')
    await new Promise((r) => proc.once('exit', r))
    await sleep(300)
  }
}

const PATHS = { hello: '/hello', json: '/users/42?q=catzilla', render: '/render?rows=200' }
const NAMES: Record<string, string> = { [PATHS.hello]: 'hello', [PATHS.json]: 'JSON', [PATHS.render]: 'JSON of 200 rows (~90 µs of JS)' }
const runs: Run[] = []
let port = 3600
for (const [placement, server, client] of [['pinned', '0', '1'], ['shared', '0,1', '0,1']] as const) {
  for (const path of Object.values(PATHS)) {
    for (const w of [1, 2]) {
      const run = await measure(placement, w, server, client, path, ++port)
      process.stderr.write(`[workers] ${placement} ${path} workers=${w}: ${run.rps.toFixed(0)} req/s\n`)
      runs.push(run)
    }
  }
}

const f = (n: number) => n.toLocaleString('en', { maximumFractionDigits: 0 })
const us = (n: number) => n.toFixed(2)
const lines = [
  '# Worker threads: one and two JS threads',
  '',
  `Run \`npm run bench:workers\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}, \`wrk -t1 -c64 -d${SECONDS}s\`, best of ${ROUNDS} rounds after a warm-up. Catzilla is \`benchmark/peers/catzilla.ts\` (\`serve()\` with \`CZ_WORKERS\` threads).`,
  '',
  '| scenario | placement | JS threads | req/s | vs 1 thread | CPU µs/req: main JS | worker JS | tokio | other | total |',
  '|---|---|---|---|---|---|---|---|---|---|',
]
for (const r of runs) {
  const one = runs.find((o) => o.path === r.path && o.mode === r.mode && o.workers === 1)!
  const total = r.cpu.main + r.cpu.workers + r.cpu.tokio + r.cpu.other
  const name = NAMES[r.path]!
  lines.push(`| ${name} | ${r.placement} | ${r.workers} | ${f(r.rps)} | ${(r.rps / one.rps).toFixed(2)}× | ${us(r.cpu.main)} | ${us(r.cpu.workers)} | ${us(r.cpu.tokio)} | ${us(r.cpu.other)} | ${us(total)} |`)
}
// The model: a request needs `js` µs on some JS thread and `total` µs of CPU in all. With C cores
// for the server (load generated elsewhere) it serves at most C × 1e6 / total req/s, and needs
// enough JS threads that none is the bound: W ≥ C × js / total.
lines.push('', '## What it gives on a bigger machine', '')
lines.push('From the two-thread pinned runs (JS µs = main + worker JS threads per request, so the cost of spreading is in it): with C cores for the server and the load generated elsewhere, throughput ≈ C × 10⁶ / total µs per request, provided there are W ≥ C × JS µs / total µs JS threads (`workers`), else W × 10⁶ / JS µs.', '')
lines.push('| scenario | JS µs/req | total µs/req | req/s per core | 4 cores: workers, req/s | 8 cores | 16 cores |', '|---|---|---|---|---|---|---|')
for (const path of Object.values(PATHS)) {
  const r = runs.find((o) => o.path === path && o.mode === 'pinned' && o.workers === 2)!
  const js = r.cpu.main + r.cpu.workers
  const total = js + r.cpu.tokio + r.cpu.other
  const at = (c: number) => `${Math.ceil((c * js) / total)}, ${f((c * 1e6) / total)}`
  lines.push(`| ${NAMES[path]} | ${us(js)} | ${us(total)} | ${f(1e6 / total)} | ${at(4)} | ${at(8)} | ${at(16)} |`)
}
lines.push('', 'Pinned: the server on CPU 0 and wrk on CPU 1, as in RESULTS.md, so the second JS thread shares the server\'s one core: this row shows what spreading costs, not what it gains. Shared: server and wrk both on CPUs 0–1 (this machine has two), so wrk takes part of what a second core would give. The model is a bound from measured CPU per request; it assumes the load spreads evenly (the core hands each request to the thread with the fewest unanswered) and ignores memory-bandwidth and lock contention, which grow with cores.', '')
writeFileSync(join(here, 'WORKERS.md'), lines.join('\n'))
console.log(lines.join('\n'))
