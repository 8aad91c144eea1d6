/** The Autobahn|Testsuite target: Catzilla echo routes on 127.0.0.1 (port from argv[2], 0 = any), printing `port <n>` once listening. */
import { Catzilla } from '../../index.js'

const app = new Catzilla()
// Autobahn sends messages up to 16 MiB (cases 9.*) and expects them echoed whole.
const echo = { maxPayload: 64 << 20, maxBackpressure: 64 << 20, message: (ws: { send(d: string | Buffer): unknown }, data: string | Buffer) => void ws.send(data) }
// permessage-deflate both ways: messages compressed alone (the default), and with context takeover.
app.ws('/echo', { ...echo, compression: { threshold: 0 } })
app.ws('/echo-context', { ...echo, compression: { contextTakeover: true, threshold: 0 } })
const { port } = await app.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1' })
console.log(`port ${port}`)
process.once('SIGTERM', () => void app.close({ timeout: 1000 }).then(() => process.exit(0)))
