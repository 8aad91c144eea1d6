/** `serve()`: one app module run on several JS threads (the main thread and Node worker threads) over one Rust server. */
// Why a module and not `new Catzilla({ workers })` (DESIGN.md §7): handlers are closures, and a
// worker thread cannot receive closures, so every thread must run the code that declares the
// routes; an entry module (its default export) is that code. Function-valued options cannot cross
// either, which is why `ServeOptions` has no `onError` reporter.
import { availableParallelism } from 'node:os'
import { isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { Catzilla } from './app.js'
import { CatzillaError } from './errors.js'
import type { ErrorCode } from './errors.js'
import type { AppOptions, CloseOptions, ListenOptions, ListenResult } from './types.js'

/** Which thread an app module is set up on. */
export interface WorkerInfo {
  /** 0 on the main thread, 1…n−1 on the worker threads (a replacement keeps its index). */
  worker: number
  /** Threads that take requests (`workers`). */
  workers: number
}

/**
 * The default export of an app module: adds routes, middleware and hooks to `app`. `serve` runs
 * it once on every thread, so it must declare the same routes in the same order each time.
 */
export type AppSetup = (app: Catzilla, info: WorkerInfo) => void | Promise<void>

/** Options of {@link serve}: the app's (except the `onError` reporter), where to listen, and the threads. */
export interface ServeOptions extends Omit<AppOptions, 'onError'>, ListenOptions {
  /**
   * JS threads that run handlers: the main thread plus `workers − 1` Node worker threads, each
   * with its own copy of the app module; `'auto'` is one per core (`os.availableParallelism()`).
   * The Rust core does the I/O on every core either way; this spreads the JS work. Default 1.
   */
  workers?: number | 'auto'
  /**
   * Called when a worker thread dies (an uncaught exception, `process.exit` in the worker) after
   * start-up; the worker is replaced. Default: logs with `console.error`.
   */
  onWorkerError?: (err: unknown, worker: number) => void
}

/** A running {@link serve}. */
export interface Served extends ListenResult {
  /** The main thread's app: `publish`, `stats()`, `streams()` … act on the whole server. */
  readonly app: Catzilla
  /** Threads that take requests now (the main thread included). */
  readonly workers: number
  /** Graceful close of every thread: workers keep answering in-flight requests until the cut. */
  close(options?: CloseOptions): Promise<void>
}

/** What the main thread hands a worker thread (`workerData`). @internal */
export interface WorkerData {
  key: number
  worker: number
  workers: number
  module: string
  trustProxy: boolean | undefined
  /** The worker entry module. */
  entry: string
  /** tsx's API module, when the worker must load TypeScript through it. */
  tsx: string | undefined
}

/** Messages a worker thread posts to the main thread. @internal */
export type WorkerMessage = { type: 'ready' }

/** Loads an app module and returns its default export. @internal */
export async function loadSetup(href: string): Promise<AppSetup> {
  const mod = (await import(href)) as { default?: unknown }
  if (typeof mod.default !== 'function') {
    throw new CatzillaError('CZ_WORKER', `${href} must export a default function (app, info) => { … } that adds the routes`)
  }
  return mod.default as AppSetup
}

/**
 * A worker's error as the main thread reports it: errors cross threads by structured clone, which
 * keeps name, message and own properties but not the class, so `CatzillaError`s are rebuilt (same
 * `code`) and anything else becomes an `Error`.
 */
function rebuilt(err: unknown, worker: number): Error {
  const e = err as { code?: unknown; message?: unknown; stack?: unknown } | null
  const message = typeof e?.message === 'string' ? e.message : String(err)
  if (typeof e?.code === 'string' && e.code.startsWith('CZ_')) {
    const out = new CatzillaError(e.code as ErrorCode, message, { cause: err })
    if (typeof e.stack === 'string') out.stack = e.stack
    return out
  }
  if (err instanceof Error) return err
  const out = new Error(`worker ${worker}: ${message}`, { cause: err })
  if (typeof e?.stack === 'string') out.stack = e.stack
  return out
}

function moduleHref(module: string | URL): string {
  if (module instanceof URL) return module.href
  if (/^[a-z][a-z0-9+.-]*:/i.test(module) && !isAbsolute(module)) return module
  return pathToFileURL(resolve(module)).href
}

function threadCount(w: ServeOptions['workers']): number {
  if (w === undefined) return 1
  if (w === 'auto') return Math.max(1, availableParallelism())
  if (!Number.isInteger(w) || w < 1 || w > 256) throw new RangeError(`workers must be an integer 1–256 or 'auto', got ${String(w)}`)
  return w
}

/** The worker threads' entry module, next to this one (`.ts` when run from source). */
const WORKER_ENTRY = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url).href

/**
 * Starts the entry in a worker. Node 20 does not apply the main thread's `--import` loaders (tsx)
 * to a worker's modules (nodejs/node#47747), so when the entry or the app module is TypeScript and
 * tsx is installed, the worker loads them through tsx's `tsImport`, which carries the loader to
 * every module they import (one module graph, so `instanceof` holds between the app module and
 * the framework). Otherwise a plain `import`.
 */
const BOOTSTRAP = `const { workerData: d } = require('node:worker_threads')
if (d.tsx) import(d.tsx).then((m) => m.tsImport(d.entry, d.entry))
else import(d.entry)`

/** tsx's programmatic API when a TypeScript module must be loaded in a worker and tsx is there. */
function tsxApi(module: string): string | undefined {
  if (!/\.[mc]?ts$/.test(WORKER_ENTRY) && !/\.[mc]?ts$/.test(new URL(module).pathname)) return undefined
  try {
    return import.meta.resolve('tsx/esm/api')
  } catch {
    return undefined
  }
}

/** Restart delays after a worker dies: doubles while replacements keep dying, up to 5 s. */
const RESTART_MIN_MS = 100
const RESTART_MAX_MS = 5_000

/**
 * Serves the app module `module` (its default export adds the routes, see {@link AppSetup}) on
 * `workers` JS threads over one Rust server: one listener, one topic registry, one set of limits
 * and stats. The core hands each request to the thread with the fewest requests waiting for a
 * reply; a stream or WebSocket stays on the thread that opened it, and a resumed WebSocket session
 * goes back to it. A worker that dies is reported and replaced; the others' connections are
 * untouched (its own unanswered requests get 503, its WebSockets a 1011 close).
 *
 * @example
 * // server.ts
 * const server = await serve(new URL('./app.ts', import.meta.url), { workers: 'auto', port: 3000 })
 * // app.ts
 * export default (app: Catzilla) => { app.get('/', () => 'hello') }
 */
export async function serve(module: string | URL, options: ServeOptions = {}): Promise<Served> {
  const { workers: w, onWorkerError, port, host, ...appOptions } = options
  const workers = threadCount(w)
  const href = moduleHref(module)
  const setup = await loadSetup(href)
  const app = new Catzilla(appOptions)
  await setup(app, { worker: 0, workers })
  const listening = await app.listen({ port, host })
  if (workers === 1) return served(app, listening)

  const key = app.native.share()
  const tsx = tsxApi(href)
  const threads = new Map<number, Worker>()
  let closing = false
  const report = onWorkerError ?? ((err: unknown, i: number) => console.error(`[catzilla] worker ${i} died and is being replaced:`, err))

  /** Starts worker `i`; resolves once it takes requests, rejects if it dies first. */
  const start = (i: number): Promise<Worker> =>
    new Promise((ready, failed) => {
      const data: WorkerData = { key, worker: i, workers, module: href, trustProxy: options.trustProxy, entry: WORKER_ENTRY, tsx }
      const worker = new Worker(BOOTSTRAP, { eval: true, workerData: data })
      threads.set(i, worker)
      let up = false
      let error: unknown
      worker.on('message', (m: WorkerMessage) => {
        if (m.type !== 'ready') return
        up = true
        ready(worker)
      })
      worker.on('error', (err) => {
        error = rebuilt(err, i)
      })
      worker.on('exit', (code) => {
        app.native.workerExited(i)
        if (threads.get(i) === worker) threads.delete(i)
        const why = error ?? new CatzillaError('CZ_WORKER', `worker ${i} exited with code ${code}`)
        if (!up) return failed(why)
        if (closing) return
        report(why, i)
        restart(i)
      })
    })

  let delay = RESTART_MIN_MS
  let lastRestart = 0
  const restart = (i: number) => {
    const now = Date.now()
    delay = now - lastRestart > RESTART_MAX_MS * 2 ? RESTART_MIN_MS : Math.min(delay * 2, RESTART_MAX_MS)
    lastRestart = now
    setTimeout(() => {
      if (closing) return
      start(i).catch((err: unknown) => {
        // It died during start-up (the module throws now?): report and try again later.
        if (closing) return
        report(err, i)
        restart(i)
      })
    }, delay).unref()
  }

  const stopAll = async () => {
    closing = true
    await Promise.all([...threads.values()].map((t) => t.terminate()))
    threads.clear()
  }
  try {
    await Promise.all(Array.from({ length: workers - 1 }, (_, k) => start(k + 1)))
  } catch (err) {
    await stopAll()
    await app.close({ timeout: 0 })
    throw err
  }
  return served(app, listening, async () => {
    closing = true
    for (const t of threads.values()) t.postMessage({ type: 'closing' })
  }, stopAll)
}

function served(
  app: Catzilla,
  at: ListenResult,
  beforeClose: () => Promise<void> = async () => undefined,
  afterClose: () => Promise<void> = async () => undefined,
): Served {
  return {
    ...at,
    app,
    get workers() {
      return app.native.workers()
    },
    async close(options?: CloseOptions) {
      await beforeClose()
      await app.close(options)
      await afterClose()
    },
  }
}
