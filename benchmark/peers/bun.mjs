// Bun.serve serving the benchmark scenarios (run with Bun from its npm package); WebSockets via Bun's own.
const EVENT = 'the quick brown fox jumps over the lazy dog'
const enc = new TextEncoder()
const message = (i, size) => `${i} `.padEnd(size, 'x')
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
    open(ws) {
      if (ws.data.path !== '/ws-sub') return
      ws.subscribe('bench')
      ws.send('ready')
    },
    message(ws, data) {
      if (ws.data.path === '/ws-echo') ws.send(data)
    },
  },
  fetch(req, server) {
    const url = new URL(req.url)
    if (url.pathname === '/ws-echo' || url.pathname === '/ws-sub') {
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
      for (let i = 0; i < n; i++) {
        const m = message(i, size)
        const frame = enc.encode(`data: ${m}\n\n`)
        for (const c of sseSubs) c.enqueue(frame)
        server.publish('bench', m)
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
