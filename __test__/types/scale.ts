/** Type tests (checked by `tsc --noEmit` in `npm test`): serve() with workers, app modules, and the Redis option; `@ts-expect-error` lines must fail. */
import { Catzilla, serve } from '../../index.js'
import type { AppSetup, RedisOptions, ServeOptions, Served, WorkerInfo } from '../../index.js'

// An app module's default export.
const setup: AppSetup = (app: Catzilla, info: WorkerInfo) => {
  const worker: number = info.worker
  const workers: number = info.workers
  app.get('/', () => ({ worker, workers }))
}
void setup

const redis: RedisOptions = { url: 'redis://127.0.0.1:6379', prefix: 'app', ttl: 3600 }
const options: ServeOptions = { workers: 'auto', port: 0, host: '127.0.0.1', redis, limits: { maxBodySize: 1 << 20 }, onWorkerError: (err: unknown, w: number) => void [err, w] }
// @ts-expect-error: the onError reporter cannot cross to worker threads; serve() does not take it
const noReporter: ServeOptions = { onError: () => undefined }
// @ts-expect-error: workers is a number or 'auto'
const badWorkers: ServeOptions = { workers: 'many' }
// @ts-expect-error: a Redis option needs its url
const noUrl: RedisOptions = { prefix: 'x' }
void [noReporter, badWorkers, noUrl]

async function run() {
  const server: Served = await serve(new URL('./app.js', import.meta.url), options)
  const threads: number = server.workers
  const url: string = server.url
  server.app.publish('news', 'hello')
  // @ts-expect-error: `workers` is read-only
  server.workers = 2
  await server.close({ timeout: 1000 })
  void [threads, url]
}
void run

new Catzilla({ redis: { url: 'redis://localhost' } })
