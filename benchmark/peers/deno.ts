// Deno.serve serving the benchmark scenarios (run with Deno from its npm package); WebSockets via Deno.upgradeWebSocket, which has no permessage-deflate.
import { jsonMessage, message } from './messages.mjs'

const EVENT = 'the quick brown fox jumps over the lazy dog'
const enc = new TextEncoder()
const WS_PATHS = new Set(['/ws-echo', '/ws-sub'])
const sseSubs = new Set<ReadableStreamDefaultController<Uint8Array>>() // topic "bench": stream controllers of SSE responses
const wsSubs = new Set<WebSocket>() // topic "bench": WebSockets
function fromGen(gen: AsyncGenerator<string | Uint8Array>): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async pull(ctl) {
      const { value, done } = await gen.next()
      if (done) ctl.close()
      else ctl.enqueue(typeof value === 'string' ? enc.encode(value) : value)
    },
    cancel() {
      gen.return(undefined)
    },
  })
}
function upgrade(req: Request, path: string): Response {
  const { socket, response } = Deno.upgradeWebSocket(req)
  if (path === '/ws-echo') socket.onmessage = (e) => socket.send(e.data)
  else {
    socket.onopen = () => {
      wsSubs.add(socket)
      socket.send('ready')
    }
    socket.onclose = () => wsSubs.delete(socket)
  }
  return response
}
Deno.serve({ port: Number(Deno.env.get('PORT') ?? 3000), hostname: '127.0.0.1', onListen: () => console.log('ready') }, (req) => {
  const url = new URL(req.url)
  if (url.pathname === '/hello') return new Response('Hello, World!', { headers: { 'content-type': 'text/plain; charset=utf-8' } })
  const m = /^\/users\/([^/]+)$/.exec(url.pathname)
  if (m) return Response.json({ id: m[1], q: url.searchParams.get('q') })
  if (WS_PATHS.has(url.pathname)) {
    if (req.headers.get('upgrade')?.toLowerCase() === 'websocket') return upgrade(req, url.pathname)
    return new Response('Upgrade Required', { status: 426 })
  }
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
  if (url.pathname === '/sse-sub') {
    let ctl: ReadableStreamDefaultController<Uint8Array>
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        ctl = c
        sseSubs.add(c)
        c.enqueue(enc.encode(': subscribed\n\n')) // send the head now
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
    const make = url.searchParams.get('kind') === 'json' ? jsonMessage : message
    for (let i = 0; i < n; i++) {
      const msg = make(i, size)
      const frame = enc.encode(`data: ${msg}\n\n`)
      for (const c of sseSubs) c.enqueue(frame)
      for (const ws of wsSubs) ws.send(msg)
    }
    return new Response(String(sseSubs.size + wsSubs.size))
  }
  return new Response('Not Found', { status: 404 })
})
