/** The README's demo: JSON, path params, streams, a WebSocket chat with an SSE topic feed, uploads and files. */
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Catzilla, file, HTTPError, sse, StreamingResponse } from '../../index.js'

const app = new Catzilla()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

app.get('/', () =>
  new Response(
    `<!doctype html><title>Catzilla demo</title><h1>Catzilla for Node</h1><ul>
<li><a href="/api/status">/api/status</a> JSON</li>
<li><a href="/hello/world">/hello/:name</a> path parameter</li>
<li><a href="/count?to=5">/count?to=5</a> text stream, one line every 200 ms</li>
<li><a href="/numbers">/numbers</a> async generator of bytes-on-demand</li>
<li><a href="/clock">/clock</a> StreamingWriter, 10 ticks</li>
<li><a href="/chat">/chat</a> WebSocket chat; <a href="/chat/feed">/chat/feed</a> the same room as SSE</li>
<li><a href="/upload">/upload</a> multipart upload, streamed part by part</li>
<li><a href="/source">/source</a> this file, sent by Rust (try <code>curl -r 0-99</code>)</li></ul>`,
    { headers: { 'content-type': 'text/html; charset=utf-8' } },
  ),
)

app.get('/api/status', () => ({ ok: true, uptime: process.uptime(), stats: app.stats() }))

app.get('/hello/:name', (req) => {
  if (req.params.name!.length > 64) throw new HTTPError(400, 'name too long')
  return `Hello, ${req.params.name}!`
})

// A text stream: each line leaves as soon as it is yielded.
app.get('/count', async function* (req) {
  const to = Math.min(Number(req.query.get('to') ?? 5) || 5, 100)
  for (let i = 1; i <= to; i++) {
    yield `${i}\n`
    await sleep(200)
  }
})

// A generator pulled only as fast as the client reads: try `curl --limit-rate 10k`.
app.get('/numbers', () =>
  new StreamingResponse(
    function* () {
      for (let i = 0; i < 100_000; i++) yield `${i}\n`
    },
    { contentType: 'text/plain; charset=utf-8', onClose: (info) => console.log('numbers stream closed', info) },
  ),
)

// A writer function: file-like writes with backpressure; `await using` closes it.
app.get('/clock', (req) =>
  new StreamingResponse(
    async (w) => {
      await using out = w
      for (let i = 0; i < 10 && !req.signal.aborted; i++) {
        await out.writeln(new Date().toISOString())
        await sleep(500)
      }
    },
    { contentType: 'text/plain; charset=utf-8' },
  ),
)

// A chat room: WebSockets in, fan-out in Rust to every WebSocket and SSE subscriber of 'chat'.
app.get('/chat', () =>
  new Response(
    `<!doctype html><title>Catzilla chat</title><h1>Chat</h1>
<form id="f"><input id="m" autocomplete="off" placeholder="say something"><button>send</button></form><pre id="log"></pre>
<script>
  const ws = new WebSocket('ws://' + location.host + '/chat/ws')
  ws.onmessage = (e) => { log.textContent += e.data + '\\n' }
  f.onsubmit = (e) => { e.preventDefault(); ws.send(m.value); m.value = '' }
</script>`,
    { headers: { 'content-type': 'text/html; charset=utf-8' } },
  ),
)
let guests = 0
app.ws('/chat/ws', {
  maxPayload: 4096,
  upgrade: () => ({ name: `guest${++guests}` }),
  open: (ws) => {
    ws.subscribe('chat')
    app.publish('chat', `* ${ws.data.name} joined`)
  },
  message: (ws, data) => void app.publish('chat', `${ws.data.name}: ${String(data).slice(0, 500)}`),
  close: (ws) => void app.publish('chat', `* ${ws.data.name} left`),
})
// The same room as Server-Sent Events: the last 20 lines, then live; resumes after reconnects.
app.get('/chat/feed', () => sse.topic('chat', { replay: 20 }))

// Uploads: each part is streamed from Rust; files are hashed without being held in memory.
app.get('/upload', () =>
  new Response(
    `<!doctype html><title>Upload</title><form method="post" enctype="multipart/form-data">
<input name="note" placeholder="a note"> <input type="file" name="files" multiple> <button>upload</button></form>`,
    { headers: { 'content-type': 'text/html; charset=utf-8' } },
  ),
)
app.post('/upload', async (req) => {
  const received: Array<Record<string, unknown>> = []
  for await (const part of req.parts()) {
    if (part.filename === undefined) {
      received.push({ field: part.name, value: (await part.text()).slice(0, 200) })
      continue
    }
    const hash = createHash('sha256')
    let size = 0
    for await (const chunk of part.body) {
      hash.update(chunk)
      size += chunk.byteLength
    }
    received.push({ field: part.name, filename: part.filename, size, sha256: hash.digest('hex') })
  }
  return { received }
})

// A file sent by Rust: ETag, Last-Modified, 304 and Range come for free.
app.get('/source', () => file(fileURLToPath(import.meta.url), { contentType: 'text/plain; charset=utf-8' }))

const port = Number(process.env.PORT ?? 3000)
const { url } = await app.listen({ port, host: process.env.HOST ?? '127.0.0.1' })
console.log(`Catzilla demo listening on ${url}`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log('closing...')
    void app.close({ timeout: 5000 }).then(() => process.exit(0))
  })
}
