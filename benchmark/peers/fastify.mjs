// Fastify 5 serving the benchmark scenarios (streams via Readable.from, its documented way).
import Fastify from 'fastify'
import { PassThrough, Readable } from 'node:stream'

const EVENT = 'the quick brown fox jumps over the lazy dog'
const message = (i, size) => `${i} `.padEnd(size, 'x')
const sseSubs = new Set() // topic "bench": one PassThrough per SSE response
const app = Fastify({ keepAliveTimeout: 120_000 })
app.get('/hello', async (req, reply) => reply.type('text/plain; charset=utf-8').send('Hello, World!'))
app.get('/users/:id', async (req) => ({ id: req.params.id, q: req.query.q ?? null }))
app.get('/stream', (req, reply) => {
  const total = Number(req.query.bytes ?? 1 << 20)
  const chunk = Buffer.alloc(Number(req.query.chunk ?? 16384), 120)
  reply.type('application/octet-stream').send(Readable.from((async function* () { for (let s = 0; s < total; s += chunk.length) yield chunk })()))
})
app.get('/sse', (req, reply) => {
  const n = Number(req.query.n ?? 1000)
  reply.headers({ 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  reply.send(Readable.from((async function* () { for (let i = 0; i < n; i++) yield `id: ${i}\ndata: ${EVENT}\n\n` })()))
})
app.get('/ndjson', (req, reply) => {
  const n = Number(req.query.n ?? 1000)
  reply.type('application/x-ndjson').send(Readable.from((async function* () { for (let i = 0; i < n; i++) yield JSON.stringify({ id: i, name: `row ${i}`, ok: true }) + '\n' })()))
})
app.get('/sse-sub', (req, reply) => {
  const out = new PassThrough()
  sseSubs.add(out)
  req.raw.on('close', () => sseSubs.delete(out))
  out.write(': subscribed\n\n') // a stream reply's head leaves with its first chunk
  reply.headers({ 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }).send(out)
})
app.get('/publish', async (req, reply) => {
  const n = Number(req.query.n ?? 1)
  const size = Number(req.query.size ?? 64)
  for (let i = 0; i < n; i++) {
    const frame = `data: ${message(i, size)}\n\n`
    for (const out of sseSubs) out.write(frame)
  }
  return reply.type('text/plain').send(String(sseSubs.size))
})
await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log('ready')
