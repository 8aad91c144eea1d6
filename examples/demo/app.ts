/** The demo app as a function, so `server.ts` can listen on it and the browser test can drive it on port 0. */
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Catzilla, file, HTTPError, sse, StreamingResponse } from '../../index.js'
import type { AppOptions } from '../../index.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const publicDir = fileURLToPath(new URL('./public/', import.meta.url))

/** What the simulated model answers, one word per token. */
const ANSWER =
  'Catzilla streams every token the moment your generator yields it: the Rust core owns the socket, a bounded ring holds what the client has not read yet, and a slow reader never makes your process grow.'

/** A demo app and a function that removes its temporary files. */
export interface Demo {
  app: Catzilla
  /** The SHA-256 of `/download/sample.bin`, hex. */
  sampleSha256: string
  /** Size of the sample download in bytes. */
  sampleSize: number
  cleanup(): void
}

/**
 * Builds the demo: a page with live EventSource tokens, a WebSocket chat fanned out in Rust,
 * uploads with progress, and a download that can pause and resume with Range.
 */
export function createDemo(options: AppOptions & { tokenDelayMs?: number } = {}): Demo {
  const { tokenDelayMs = 40, ...appOptions } = options
  // Uploads of up to 64 MiB (the default 1 MiB suits JSON APIs, not a file upload page).
  const app = new Catzilla({ ...appOptions, limits: { maxBodySize: 64 << 20, ...appOptions.limits } })

  // A 4 MiB file of deterministic bytes for the resumable download.
  const dataDir = mkdtempSync(join(tmpdir(), 'catzilla-demo-'))
  const sample = Buffer.alloc(4 * 1024 * 1024 + 321)
  for (let i = 0, x = 2463534242; i < sample.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    sample[i] = x & 0xff
  }
  writeFileSync(join(dataDir, 'sample.bin'), sample)
  const sampleSha256 = createHash('sha256').update(sample).digest('hex')

  // The page and its script, sent by Rust from public/ (ETag, 304, no JS per request).
  app.static('/assets', join(publicDir, 'assets'))
  app.get('/', () => file('index.html', { root: publicDir }))

  app.get('/api/status', () => ({ ok: true, uptime: process.uptime(), stats: app.stats() }))

  app.get('/hello/:name', (req) => {
    if (req.params.name.length > 64) throw new HTTPError(400, 'name too long')
    return `Hello, ${req.params.name}!`
  })

  // Tokens as Server-Sent Events, as an LLM API streams them: each one leaves when it is yielded.
  app.get('/tokens', (req) =>
    sse(
      (async function* () {
        const words = ANSWER.split(' ')
        for (let i = 0; i < words.length && !req.signal.aborted; i++) {
          yield { event: 'token', id: String(i + 1), data: (i ? ' ' : '') + words[i] }
          await sleep(tokenDelayMs)
        }
        yield { event: 'done', data: { tokens: words.length } }
      })(),
    ),
  )

  // A text stream: each line leaves as soon as it is yielded (nosniff lets browsers show it live).
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
      { contentType: 'text/plain; charset=utf-8' },
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
  let guests = 0
  app.ws('/chat/ws', {
    maxPayload: 4096,
    upgrade: () => ({ name: `guest${++guests}` }),
    open: (ws) => {
      ws.subscribe('chat')
      ws.send(`you are ${ws.data.name}`)
      app.publish('chat', `* ${ws.data.name} joined`)
    },
    message: (ws, data) => void app.publish('chat', `${ws.data.name}: ${String(data).slice(0, 500)}`),
    close: (ws) => void app.publish('chat', `* ${ws.data.name} left`),
  })
  // The same room as Server-Sent Events: the last 20 lines, then live; resumes after reconnects.
  app.get('/chat/feed', () => sse.topic('chat', { replay: 20 }))

  // Uploads: each part is streamed from Rust; files are hashed without being held in memory.
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

  // A download sent by Rust: ETag, Range and If-Range make it resumable; the page checks the hash.
  app.get('/download/sample.bin', () => file('sample.bin', { root: dataDir, headers: { 'cache-control': 'no-store' } }))
  app.get('/download/sample.sha256', () => ({ sha256: sampleSha256, size: sample.length }))

  // This file, sent by Rust (try `curl -r 0-99`).
  app.get('/source', () => file(fileURLToPath(import.meta.url), { contentType: 'text/plain; charset=utf-8' }))

  return { app, sampleSha256, sampleSize: sample.length, cleanup: () => rmSync(dataDir, { recursive: true, force: true }) }
}
