/** The entry of a worker thread started by `serve()`: the app module set up on an app attached to the main thread's server. */
import { writeFileSync } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import { Catzilla } from './app.js'
import { loadSetup } from './serve.js'
import type { WorkerData, WorkerMessage } from './serve.js'

const data = workerData as WorkerData
// Names this thread `cz-worker-<n>` (Linux) so `top -H`, perf and the benchmark can tell it from
// V8's and libuv's helper threads, which Node names `node` like the main thread.
try {
  writeFileSync('/proc/thread-self/comm', `cz-worker-${data.worker}`)
} catch {
  /* not Linux: the name is cosmetic */
}
const app = Catzilla._attached(data.key, data.worker, { trustProxy: data.trustProxy })
const setup = await loadSetup(data.module)
await setup(app, { worker: data.worker, workers: data.workers })
app._join()
parentPort!.on('message', (m: { type: string }) => {
  if (m.type === 'closing') app._closing()
})
parentPort!.postMessage({ type: 'ready' } satisfies WorkerMessage)
