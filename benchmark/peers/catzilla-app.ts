/** The benchmark scenarios as a Catzilla app module, served by peers/catzilla.ts on one or more JS threads. */
import type { Catzilla } from '../../index.js'
import { ndjson, sse } from '../../index.js'
import { jsonMessage, message } from './messages.mjs'

export default function scenarios(app: Catzilla): void {
  app.get('/hello', () => 'Hello, World!')
  // A handler with real JS work (~90 µs here: builds and serializes 200 rows): where more JS
  // threads pay off (benchmark/workers.ts).
  app.get('/render', (req) => {
    const n = Number(req.query.get('rows') ?? 200)
    const rows = []
    for (let i = 0; i < n; i++) rows.push({ id: i, name: `user ${i}`, email: `user${i}@example.com`, score: (i * 7919) % 1000, tags: ['a', 'b', String(i % 10)] })
    return { count: rows.length, rows }
  })
  app.get('/users/:id', (req) => ({ id: req.params.id, q: req.query.get('q') }))
  app.get('/stream', async function* (req) {
    const total = Number(req.query.get('bytes') ?? 1 << 20)
    const chunk = Buffer.alloc(Number(req.query.get('chunk') ?? 16384), 120)
    for (let sent = 0; sent < total; sent += chunk.length) yield chunk
  })
  app.get('/sse', (req) => {
    const n = Number(req.query.get('n') ?? 1000)
    return sse(
      (async function* () {
        for (let i = 0; i < n; i++) yield { id: i, data: 'the quick brown fox jumps over the lazy dog' }
      })(),
      { heartbeat: 0 },
    )
  })
  app.get('/ndjson', (req) => {
    const n = Number(req.query.get('n') ?? 1000)
    return ndjson(
      (async function* () {
        for (let i = 0; i < n; i++) yield { id: i, name: `row ${i}`, ok: true }
      })(),
    )
  })
  app.ws('/ws-echo', {
    message(ws, data) {
      ws.send(data) // a string for text frames, a Buffer for binary: echoed with the same type
    },
  })
  app.ws('/ws-sub', {
    open(ws) {
      ws.subscribe('bench')
      ws.send('ready')
    },
  })
  // permessage-deflate: each message compressed alone at zlib level 6 (threshold 1024 B); a topic
  // message is compressed once per publish for all its subscribers.
  app.ws('/ws-echo-z', {
    compression: true,
    message(ws, data) {
      ws.send(data)
    },
  })
  app.ws('/ws-sub-z', {
    compression: true,
    open(ws) {
      ws.subscribe('bench')
      ws.send('ready')
    },
  })
  app.get('/sse-sub', () => sse.topic('bench'))
  app.get('/publish', (req) => {
    const n = Number(req.query.get('n') ?? 1)
    const size = Number(req.query.get('size') ?? 64)
    const make = req.query.get('kind') === 'json' ? jsonMessage : message
    let reached = 0
    for (let i = 0; i < n; i++) reached = app.publish('bench', make(i, size))
    return String(reached)
  })
}
