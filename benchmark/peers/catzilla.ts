/** Catzilla (this project) serving the benchmark scenarios. */
import { Catzilla, ndjson, sse } from '../../index.js'
import { jsonMessage, message } from './messages.mjs'

const app = new Catzilla({ bufferSize: Number(process.env.CZ_BUFFER_SIZE ?? 65536), timeouts: { keepAlive: 120_000, headers: 120_000 }, limits: { maxConnections: 20_000 } })
app.get('/hello', () => 'Hello, World!')
app.get('/users/:id', (req) => ({ id: req.params.id, q: req.query.get('q') }))
app.get('/stream', async function* (req) {
  const total = Number(req.query.get('bytes') ?? 1 << 20)
  const chunk = Buffer.alloc(Number(req.query.get('chunk') ?? 16384), 120)
  for (let sent = 0; sent < total; sent += chunk.length) yield chunk
})
app.get('/sse', (req) => {
  const n = Number(req.query.get('n') ?? 1000)
  return sse(
    (async function* () {
      for (let i = 0; i < n; i++) yield { id: i, data: 'the quick brown fox jumps over the lazy dog' }
    })(),
    { heartbeat: 0 },
  )
})
app.get('/ndjson', (req) => {
  const n = Number(req.query.get('n') ?? 1000)
  return ndjson(
    (async function* () {
      for (let i = 0; i < n; i++) yield { id: i, name: `row ${i}`, ok: true }
    })(),
  )
})
app.ws('/ws-echo', {
  message(ws, data) {
    ws.send(data) // a string for text frames, a Buffer for binary: echoed with the same type
  },
})
app.ws('/ws-sub', {
  open(ws) {
    ws.subscribe('bench')
    ws.send('ready')
  },
})
// permessage-deflate: each message compressed alone at zlib level 6 (threshold 1024 B); a topic
// message is compressed once per publish for all its subscribers.
app.ws('/ws-echo-z', {
  compression: true,
  message(ws, data) {
    ws.send(data)
  },
})
app.ws('/ws-sub-z', {
  compression: true,
  open(ws) {
    ws.subscribe('bench')
    ws.send('ready')
  },
})
app.get('/sse-sub', () => sse.topic('bench'))
app.get('/publish', (req) => {
  const n = Number(req.query.get('n') ?? 1)
  const size = Number(req.query.get('size') ?? 64)
  const make = req.query.get('kind') === 'json' ? jsonMessage : message
  let reached = 0
  for (let i = 0; i < n; i++) reached = app.publish('bench', make(i, size))
  return String(reached)
})
const { url } = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log(`ready ${url}`)
process.once('SIGINT', () => void app.close({ timeout: 1000 }).then(() => process.exit(0)))
