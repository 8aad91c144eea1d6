/** Catzilla (this project) serving the benchmark scenarios (catzilla-app.ts) on CZ_WORKERS JS threads (default 1). */
import { serve } from '../../index.js'

const server = await serve(new URL('./catzilla-app.ts', import.meta.url), {
  workers: Number(process.env.CZ_WORKERS ?? 1),
  port: Number(process.env.PORT ?? 3000),
  host: '127.0.0.1',
  bufferSize: Number(process.env.CZ_BUFFER_SIZE ?? 65536),
  timeouts: { keepAlive: 120_000, headers: 120_000 },
  limits: { maxConnections: 20_000 },
})
console.log(`ready ${server.url}`)
process.once('SIGINT', () => void server.close({ timeout: 1000 }).then(() => process.exit(0)))
