// node:http serving the benchmark scenarios (the baseline every Node framework builds on); WebSockets via `ws`.
import http from 'node:http'
import { once } from 'node:events'
import { WebSocketServer } from 'ws'
import { jsonMessage, message } from './messages.mjs'

const EVENT = 'the quick brown fox jumps over the lazy dog'
const sseSubs = new Set() // topic "bench": SSE responses
const wsSubs = new Set() // topic "bench": WebSockets
async function pipeGen(res, gen) {
  for await (const chunk of gen) if (!res.write(chunk)) await once(res, 'drain')
  res.end()
}
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  if (url.pathname === '/hello') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
    return res.end('Hello, World!')
  }
  const m = /^\/users\/([^/]+)$/.exec(url.pathname)
  if (m) {
    res.writeHead(200, { 'content-type': 'application/json' })
    return res.end(JSON.stringify({ id: m[1], q: url.searchParams.get('q') }))
  }
  if (url.pathname === '/stream') {
    const total = Number(url.searchParams.get('bytes') ?? 1 << 20)
    const chunk = Buffer.alloc(Number(url.searchParams.get('chunk') ?? 16384), 120)
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    return pipeGen(res, (async function* () { for (let s = 0; s < total; s += chunk.length) yield chunk })())
  }
  if (url.pathname === '/sse') {
    const n = Number(url.searchParams.get('n') ?? 1000)
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    return pipeGen(res, (async function* () { for (let i = 0; i < n; i++) yield `id: ${i}\ndata: ${EVENT}\n\n` })())
  }
  if (url.pathname === '/ndjson') {
    const n = Number(url.searchParams.get('n') ?? 1000)
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    return pipeGen(res, (async function* () { for (let i = 0; i < n; i++) yield JSON.stringify({ id: i, name: `row ${i}`, ok: true }) + '\n' })())
  }
  if (url.pathname === '/sse-sub') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.flushHeaders()
    sseSubs.add(res)
    return res.on('close', () => sseSubs.delete(res))
  }
  if (url.pathname === '/publish') {
    const n = Number(url.searchParams.get('n') ?? 1)
    const size = Number(url.searchParams.get('size') ?? 64)
    const make = url.searchParams.get('kind') === 'json' ? jsonMessage : message
    let reached = 0
    for (let i = 0; i < n; i++) {
      const m = make(i, size)
      const frame = `data: ${m}\n\n`
      for (const r of sseSubs) r.write(frame)
      for (const ws of wsSubs) ws.send(m)
      reached = sseSubs.size + wsSubs.size
    }
    res.writeHead(200, { 'content-type': 'text/plain' })
    return res.end(String(reached))
  }
  res.writeHead(404).end()
})
const wss = new WebSocketServer({ noServer: true })
// /ws-echo-z and /ws-sub-z: permessage-deflate, each message compressed alone at zlib level 6 from
// 1024 bytes up, as Catzilla's `compression: true`; `ws` compresses a broadcast once per socket.
const wssZ = new WebSocketServer({
  noServer: true,
  perMessageDeflate: { threshold: 1024, serverNoContextTakeover: true, clientNoContextTakeover: true, zlibDeflateOptions: { level: 6 } },
})
const WS_PATHS = new Set(['/ws-echo', '/ws-sub', '/ws-echo-z', '/ws-sub-z'])
server.on('upgrade', (req, socket, head) => {
  const path = req.url.split('?')[0]
  if (!WS_PATHS.has(path)) return socket.destroy()
  const target = path.endsWith('-z') ? wssZ : wss
  target.handleUpgrade(req, socket, head, (ws) => {
    if (path.startsWith('/ws-echo')) return ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
    wsSubs.add(ws)
    ws.on('close', () => wsSubs.delete(ws))
    ws.send('ready')
  })
})
server.keepAliveTimeout = 120_000
server.headersTimeout = 121_000
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => console.log('ready'))
