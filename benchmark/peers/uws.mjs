// uWebSockets.js (the uWS C++ server as a Node addon) serving the benchmark scenarios with its own App, WebSockets and pub/sub.
import uWS from 'uWebSockets.js'
import { jsonMessage, message } from './messages.mjs'

const EVENT = 'the quick brown fox jumps over the lazy dog'
const sseSubs = new Set() // topic "bench": uWS responses of SSE subscribers
// Bun's defaults (uWS.js's own are 64 KiB of backpressure, above which a publish is dropped, and
// 16 KiB messages): a broadcast of 500 messages to each client must not be cut short.
const WS_LIMITS = { maxBackpressure: 16 << 20, maxPayloadLength: 16 << 20, idleTimeout: 120 }

/** Streams an async generator into a uWS response: `write` buffers what the socket does not take and returns false, then `onWritable` says when it drained. */
async function pipeGen(res, contentType, gen) {
  let aborted = false
  let drained = null
  res.onAborted(() => {
    aborted = true
    drained?.()
  })
  res.onWritable(() => {
    drained?.()
    return true
  })
  res.cork(() => res.writeStatus('200 OK').writeHeader('content-type', contentType))
  for await (const chunk of gen) {
    if (aborted) return gen.return()
    let ok
    res.cork(() => (ok = res.write(chunk)))
    if (!ok) await new Promise((r) => (drained = r))
    drained = null
  }
  if (!aborted) res.cork(() => res.end())
}
const num = (v, d) => Number(v ?? d)

const app = uWS.App()
app.get('/hello', (res) => {
  res.writeStatus('200 OK').writeHeader('content-type', 'text/plain; charset=utf-8').end('Hello, World!')
})
app.get('/users/:id', (res, req) => {
  res.writeStatus('200 OK').writeHeader('content-type', 'application/json').end(JSON.stringify({ id: req.getParameter(0), q: req.getQuery('q') ?? null }))
})
app.get('/stream', (res, req) => {
  const total = num(req.getQuery('bytes'), 1 << 20)
  const chunk = Buffer.alloc(num(req.getQuery('chunk'), 16384), 120)
  pipeGen(res, 'application/octet-stream', (async function* () { for (let s = 0; s < total; s += chunk.length) yield chunk })())
})
app.get('/sse', (res, req) => {
  const n = num(req.getQuery('n'), 1000)
  pipeGen(res, 'text/event-stream', (async function* () { for (let i = 0; i < n; i++) yield `id: ${i}\ndata: ${EVENT}\n\n` })())
})
app.get('/ndjson', (res, req) => {
  const n = num(req.getQuery('n'), 1000)
  pipeGen(res, 'application/x-ndjson', (async function* () { for (let i = 0; i < n; i++) yield JSON.stringify({ id: i, name: `row ${i}`, ok: true }) + '\n' })())
})
app.get('/sse-sub', (res) => {
  res.onAborted(() => sseSubs.delete(res))
  res.writeStatus('200 OK').writeHeader('content-type', 'text/event-stream').writeHeader('cache-control', 'no-cache')
  res.write(': subscribed\n\n') // uWS sends the head with the first write
  sseSubs.add(res)
})
app.get('/publish', (res, req) => {
  const n = num(req.getQuery('n'), 1)
  const size = num(req.getQuery('size'), 64)
  const json = req.getQuery('kind') === 'json' // the permessage-deflate row: publish compressed
  for (let i = 0; i < n; i++) {
    const m = json ? jsonMessage(i, size) : message(i, size)
    const frame = `data: ${m}\n\n`
    for (const r of sseSubs) r.cork(() => r.write(frame))
    app.publish('bench', m, false, json)
  }
  res.end(String(sseSubs.size + app.numSubscribers('bench')))
})
const echo = (ws, msg, isBinary) => ws.send(msg, isBinary)
const subscribe = (ws) => {
  ws.subscribe('bench')
  ws.send('ready')
}
app.ws('/ws-echo', { ...WS_LIMITS, compression: uWS.DISABLED, message: echo })
app.ws('/ws-sub', { ...WS_LIMITS, compression: uWS.DISABLED, open: subscribe })
// permessage-deflate: uWS's shared compressor (every message compressed alone, i.e.
// server_no_context_takeover) and shared decompressor; uWS compresses only the sends and
// publishes given the compress flag: the -z routes pass it.
app.ws('/ws-echo-z', { ...WS_LIMITS, compression: uWS.SHARED_COMPRESSOR, message: (ws, msg, isBinary) => ws.send(msg, isBinary, true) })
app.ws('/ws-sub-z', { ...WS_LIMITS, compression: uWS.SHARED_COMPRESSOR, open: subscribe })
app.any('/*', (res) => res.writeStatus('404 Not Found').end())
app.listen('127.0.0.1', Number(process.env.PORT ?? 3000), (token) => {
  if (!token) {
    console.error('uws: listen failed')
    process.exit(1)
  }
  console.log('ready')
})
