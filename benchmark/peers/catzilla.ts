/** Catzilla (this project) serving the benchmark scenarios (catzilla-app.ts) on CZ_WORKERS JS threads (default 1), with REDIS_URL through that Redis. */
import { serve } from '../../index.js'

const server = await serve(new URL('./catzilla-app.ts', import.meta.url), {
  workers: Number(process.env.CZ_WORKERS ?? 1),
  port: Number(process.env.PORT ?? 3000),
  host: '127.0.0.1',
  // The default ring size unless CZ_BUFFER_SIZE is set (to compare sizes).
  ...(process.env.CZ_BUFFER_SIZE ? { bufferSize: Number(process.env.CZ_BUFFER_SIZE) } : {}),
  timeouts: { keepAlive: 120_000, headers: 120_000 },
  limits: { maxConnections: 20_000 },
  // The cross-process rows (benchmark/cluster.ts): topics through this Redis.
  ...(process.env.REDIS_URL ? { redis: { url: process.env.REDIS_URL, prefix: 'czbench' } } : {}),
})
console.log(`ready ${server.url}`)
process.once('SIGINT', () => void server.close({ timeout: 1000 }).then(() => process.exit(0)))
