/** The Autobahn|Testsuite target: a Catzilla echo route on 127.0.0.1 (port from argv[2], 0 = any), printing `port <n>` once listening. */
import { Catzilla } from '../../index.js'

const app = new Catzilla()
// Autobahn sends messages up to 16 MiB (cases 9.*) and expects them echoed whole.
app.ws('/echo', { maxPayload: 64 << 20, maxBackpressure: 64 << 20, message: (ws, data) => void ws.send(data) })
const { port } = await app.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1' })
console.log(`port ${port}`)
process.once('SIGTERM', () => void app.close({ timeout: 1000 }).then(() => process.exit(0)))
