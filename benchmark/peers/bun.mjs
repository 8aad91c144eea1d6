// Bun.serve serving the benchmark scenarios (run with Bun from its npm package); WebSockets via Bun's own.
import { jsonMessage, message } from './messages.mjs'
const EVENT = 'the quick brown fox jumps over the lazy dog'
const enc = new TextEncoder()
const WS_PATHS = new Set(['/ws-echo', '/ws-sub', '/ws-echo-z', '/ws-sub-z'])
const sseSubs = new Set() // topic "bench": stream controllers of SSE responses
function fromGen(gen) {
  return new ReadableStream({
    async pull(ctl) {
      const { value, done } = await gen.next()
      if (done) ctl.close()
      else ctl.enqueue(typeof value === 'string' ? enc.encode(value) : value)
    },
    cancel() { gen.return() },
  })
}
const server = Bun.serve({
  port: Number(process.env.PORT ?? 3000),
  hostname: '127.0.0.1',
  idleTimeout: 120,
  websocket: {
    // uWS's shared compressor and decompressor: every message compressed alone
    // (server_no_context_takeover), by libdeflate at level 6. It is negotiated with every client
    // that offers it (the uncompressed rows' client does not), but Bun compresses only the sends
    // and publishes given `compress = true`: the -z routes pass it.
    perMessageDeflate: true,
    open(ws) {
      if (ws.data.path !== '/ws-sub' && ws.data.path !== '/ws-sub-z') return
      ws.subscribe('bench')
      ws.send('ready')
    },
    message(ws, data) {
      if (ws.data.path === '/ws-echo') ws.send(data)
      if (ws.data.path === '/ws-echo-z') ws.send(data, true)
    },
  },
  fetch(req, server) {
    const url = new URL(req.url)
    if (WS_PATHS.has(url.pathname)) {
      if (server.upgrade(req, { data: { path: url.pathname } })) return undefined
      return new Response('Upgrade Required', { status: 426 })
    }
    if (url.pathname === '/sse-sub') {
      let ctl
      const body = new ReadableStream({
        start(c) {
          ctl = c
          sseSubs.add(c)
          c.enqueue(enc.encode(': subscribed\n\n')) // Bun holds the head back until the first chunk
        },
        cancel() {
          sseSubs.delete(ctl)
        },
      })
      return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } })
    }
    if (url.pathname === '/publish') {
      const n = Number(url.searchParams.get('n') ?? 1)
      const size = Number(url.searchParams.get('size') ?? 64)
      const json = url.searchParams.get('kind') === 'json' // the permessage-deflate row: publish compressed
      for (let i = 0; i < n; i++) {
        const m = json ? jsonMessage(i, size) : message(i, size)
        const frame = enc.encode(`data: ${m}\n\n`)
        for (const c of sseSubs) c.enqueue(frame)
        server.publish('bench', m, json)
      }
      return new Response(String(sseSubs.size + server.subscriberCount('bench')))
    }
    if (url.pathname === '/hello') return new Response('Hello, World!', { headers: { 'content-type': 'text/plain; charset=utf-8' } })
    const m = /^\/users\/([^/]+)$/.exec(url.pathname)
    if (m) return Response.json({ id: m[1], q: url.searchParams.get('q') })
    if (url.pathname === '/stream') {
      const total = Number(url.searchParams.get('bytes') ?? 1 << 20)
      const chunk = new Uint8Array(Number(url.searchParams.get('chunk') ?? 16384)).fill(120)
      return new Response(fromGen((async function* () { for (let s = 0; s < total; s += chunk.length) yield chunk })()), { headers: { 'content-type': 'application/octet-stream' } })
    }
    if (url.pathname === '/sse') {
      const n = Number(url.searchParams.get('n') ?? 1000)
      return new Response(fromGen((async function* () { for (let i = 0; i < n; i++) yield `id: ${i}\ndata: ${EVENT}\n\n` })()), { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } })
    }
    if (url.pathname === '/ndjson') {
      const n = Number(url.searchParams.get('n') ?? 1000)
      return new Response(fromGen((async function* () { for (let i = 0; i < n; i++) yield JSON.stringify({ id: i, name: `row ${i}`, ok: true }) + '\n' })()), { headers: { 'content-type': 'application/x-ndjson' } })
    }
    return new Response('Not Found', { status: 404 })
  },
})
console.log('ready')
