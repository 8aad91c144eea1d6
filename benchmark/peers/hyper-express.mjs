// hyper-express (an Express-like API over uWebSockets.js) serving the benchmark scenarios; responses are Node Writables, WebSockets and pub/sub are uWS's.
import { once } from 'node:events'
import HyperExpress from 'hyper-express'
import { jsonMessage, message } from './messages.mjs'

const EVENT = 'the quick brown fox jumps over the lazy dog'
const sseSubs = new Set() // topic "bench": responses of SSE subscribers
// Bun's defaults (hyper-express's own are 1 MiB of backpressure, above which uWS drops a publish,
// 32 KiB messages and a 32 s idle timeout): a broadcast of 500 messages to each client must not be cut short.
const WS_OPTIONS = { max_backpressure: 16 << 20, max_payload_length: 16 << 20, idle_timeout: 120 }

async function pipeGen(res, gen) {
  for await (const chunk of gen) {
    if (res.completed) return gen.return() // the client went away
    if (!res.write(chunk)) await once(res, 'drain')
  }
  res.end()
}

const app = new HyperExpress.Server()
app.get('/hello', (req, res) => {
  res.header('content-type', 'text/plain; charset=utf-8').send('Hello, World!')
})
app.get('/users/:id', (req, res) => {
  res.json({ id: req.path_parameters.id, q: req.query_parameters.q ?? null })
})
app.get('/stream', (req, res) => {
  const total = Number(req.query_parameters.bytes ?? 1 << 20)
  const chunk = Buffer.alloc(Number(req.query_parameters.chunk ?? 16384), 120)
  res.header('content-type', 'application/octet-stream')
  return pipeGen(res, (async function* () { for (let s = 0; s < total; s += chunk.length) yield chunk })())
})
app.get('/sse', (req, res) => {
  const n = Number(req.query_parameters.n ?? 1000)
  res.header('content-type', 'text/event-stream').header('cache-control', 'no-cache')
  return pipeGen(res, (async function* () { for (let i = 0; i < n; i++) yield `id: ${i}\ndata: ${EVENT}\n\n` })())
})
app.get('/ndjson', (req, res) => {
  const n = Number(req.query_parameters.n ?? 1000)
  res.header('content-type', 'application/x-ndjson')
  return pipeGen(res, (async function* () { for (let i = 0; i < n; i++) yield JSON.stringify({ id: i, name: `row ${i}`, ok: true }) + '\n' })())
})
app.get('/sse-sub', (req, res) => {
  res.sse.open() // the SSE helper: its headers and a `: open` comment, which sends the head
  sseSubs.add(res)
  res.once('close', () => sseSubs.delete(res))
})
app.get('/publish', (req, res) => {
  const n = Number(req.query_parameters.n ?? 1)
  const size = Number(req.query_parameters.size ?? 64)
  const json = req.query_parameters.kind === 'json' // the permessage-deflate row: publish compressed
  for (let i = 0; i < n; i++) {
    const m = json ? jsonMessage(i, size) : message(i, size)
    for (const r of sseSubs) r.sse.send(m) // `data: m\n\n`
    app.publish('bench', m, false, json)
  }
  res.send(String(sseSubs.size + app.num_of_subscribers('bench')))
})
const echo = (ws) => ws.on('message', (msg, isBinary) => ws.send(msg, isBinary))
const subscribe = (ws) => {
  ws.subscribe('bench')
  ws.send('ready')
}
app.ws('/ws-echo', WS_OPTIONS, echo)
app.ws('/ws-sub', WS_OPTIONS, subscribe)
// permessage-deflate: uWS's shared compressor (every message compressed alone, i.e.
// server_no_context_takeover); uWS compresses only the sends and publishes given the compress
// flag: the -z routes pass it.
app.ws('/ws-echo-z', { ...WS_OPTIONS, compression: HyperExpress.compressors.SHARED_COMPRESSOR }, (ws) => ws.on('message', (msg, isBinary) => ws.send(msg, isBinary, true)))
app.ws('/ws-sub-z', { ...WS_OPTIONS, compression: HyperExpress.compressors.SHARED_COMPRESSOR }, subscribe)
await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1')
console.log('ready')
