// Express 5 serving the benchmark scenarios.
import express from 'express'
import { Readable } from 'node:stream'

const EVENT = 'the quick brown fox jumps over the lazy dog'
const message = (i, size) => `${i} `.padEnd(size, 'x')
const sseSubs = new Set() // topic "bench": SSE responses
const app = express()
app.get('/hello', (req, res) => res.type('text/plain').send('Hello, World!'))
app.get('/users/:id', (req, res) => res.json({ id: req.params.id, q: req.query.q ?? null }))
app.get('/stream', (req, res) => {
  const total = Number(req.query.bytes ?? 1 << 20)
  const chunk = Buffer.alloc(Number(req.query.chunk ?? 16384), 120)
  res.type('application/octet-stream')
  Readable.from((async function* () { for (let s = 0; s < total; s += chunk.length) yield chunk })()).pipe(res)
})
app.get('/sse', (req, res) => {
  const n = Number(req.query.n ?? 1000)
  res.set({ 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  Readable.from((async function* () { for (let i = 0; i < n; i++) yield `id: ${i}\ndata: ${EVENT}\n\n` })()).pipe(res)
})
app.get('/ndjson', (req, res) => {
  const n = Number(req.query.n ?? 1000)
  res.type('application/x-ndjson')
  Readable.from((async function* () { for (let i = 0; i < n; i++) yield JSON.stringify({ id: i, name: `row ${i}`, ok: true }) + '\n' })()).pipe(res)
})
app.get('/sse-sub', (req, res) => {
  res.set({ 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  res.flushHeaders()
  sseSubs.add(res)
  res.on('close', () => sseSubs.delete(res))
})
app.get('/publish', (req, res) => {
  const n = Number(req.query.n ?? 1)
  const size = Number(req.query.size ?? 64)
  for (let i = 0; i < n; i++) {
    const frame = `data: ${message(i, size)}\n\n`
    for (const r of sseSubs) r.write(frame)
  }
  res.type('text/plain').send(String(sseSubs.size))
})
const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => console.log('ready'))
server.keepAliveTimeout = 120_000
server.headersTimeout = 121_000
