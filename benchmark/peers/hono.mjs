// Hono on @hono/node-server serving the benchmark scenarios (streams via hono/streaming).
import { Hono } from 'hono'
import { serve } from '@hono/node-server'
import { stream, streamSSE } from 'hono/streaming'

const EVENT = 'the quick brown fox jumps over the lazy dog'
const app = new Hono()
app.get('/hello', (c) => c.text('Hello, World!'))
app.get('/users/:id', (c) => c.json({ id: c.req.param('id'), q: c.req.query('q') ?? null }))
app.get('/stream', (c) => {
  const total = Number(c.req.query('bytes') ?? 1 << 20)
  const chunk = new Uint8Array(Number(c.req.query('chunk') ?? 16384)).fill(120)
  c.header('content-type', 'application/octet-stream')
  return stream(c, async (s) => { for (let sent = 0; sent < total; sent += chunk.length) await s.write(chunk) })
})
app.get('/sse', (c) => {
  const n = Number(c.req.query('n') ?? 1000)
  return streamSSE(c, async (s) => { for (let i = 0; i < n; i++) await s.writeSSE({ id: String(i), data: EVENT }) })
})
app.get('/ndjson', (c) => {
  const n = Number(c.req.query('n') ?? 1000)
  c.header('content-type', 'application/x-ndjson')
  return stream(c, async (s) => { for (let i = 0; i < n; i++) await s.write(JSON.stringify({ id: i, name: `row ${i}`, ok: true }) + '\n') })
})
const server = serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: '127.0.0.1' }, () => console.log('ready'))
server.keepAliveTimeout = 120_000
