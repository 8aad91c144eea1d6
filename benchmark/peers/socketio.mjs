// socket.io 4 on node:http serving the WebSocket scenarios (room "bench"; /hello for the startup probe).
// With REDIS_URL: its Redis adapter (@socket.io/redis-adapter on node-redis), for the cross-process rows.
import http from 'node:http'
import { Server } from 'socket.io'

const message = (i, size) => `${i} `.padEnd(size, 'x')
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  if (url.pathname === '/hello') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
    return res.end('Hello, World!')
  }
  if (url.pathname === '/publish') {
    const n = Number(url.searchParams.get('n') ?? 1)
    const size = Number(url.searchParams.get('size') ?? 64)
    for (let i = 0; i < n; i++) io.to('bench').emit('m', message(i, size))
    res.writeHead(200, { 'content-type': 'text/plain' })
    return res.end(String(io.sockets.adapter.rooms.get('bench')?.size ?? 0))
  }
  res.writeHead(404).end()
})
const io = new Server(server, { serveClient: false })
if (process.env.REDIS_URL) {
  const { createClient } = await import('redis')
  const { createAdapter } = await import('@socket.io/redis-adapter')
  const pub = createClient({ url: process.env.REDIS_URL })
  const sub = pub.duplicate()
  await Promise.all([pub.connect(), sub.connect()])
  io.adapter(createAdapter(pub, sub))
}
io.on('connection', (socket) => {
  socket.join('bench')
  socket.on('echo', (payload) => socket.emit('echo', payload))
  socket.emit('ready')
})
server.keepAliveTimeout = 120_000
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => console.log('ready'))
