// Bun.serve serving the benchmark scenarios (run with Bun from its npm package).
const EVENT = 'the quick brown fox jumps over the lazy dog'
const enc = new TextEncoder()
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
Bun.serve({
  port: Number(process.env.PORT ?? 3000),
  hostname: '127.0.0.1',
  idleTimeout: 120,
  fetch(req) {
    const url = new URL(req.url)
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
