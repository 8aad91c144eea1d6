// Smoke test of an installed catzilla: a JSON route, a generator stream and an SSE route, fetched for real.
import assert from 'node:assert/strict'

/** Serves the three routes with the given module namespace and checks every answer; prints one line. */
export async function run({ Catzilla, sse }, label) {
  const app = new Catzilla({ onError: (err) => console.error(err) })
  app.get('/json/:id', (req) => ({ id: req.params.id, q: req.query.get('q') }))
  app.get('/stream', async function* () {
    for (let i = 0; i < 3; i++) yield `chunk ${i}\n`
  })
  app.get('/sse', () =>
    sse(
      (function* () {
        yield { id: 1, event: 'tick', data: { n: 1 } }
        yield 'two\nlines'
      })(),
      { heartbeat: 0 },
    ),
  )
  const { url } = await app.listen({ port: 0, host: '127.0.0.1' })
  try {
    const json = await fetch(`${url}/json/42?q=x`)
    assert.equal(json.headers.get('content-type'), 'application/json')
    assert.deepEqual(await json.json(), { id: '42', q: 'x' })
    const stream = await fetch(`${url}/stream`)
    assert.equal(stream.headers.get('transfer-encoding'), 'chunked')
    assert.equal(await stream.text(), 'chunk 0\nchunk 1\nchunk 2\n')
    const events = await fetch(`${url}/sse`)
    assert.equal(events.headers.get('content-type'), 'text/event-stream; charset=utf-8')
    assert.equal(await events.text(), 'id: 1\nevent: tick\ndata: {"n":1}\n\ndata: two\ndata: lines\n\n')
  } finally {
    await app.close({ timeout: 1000 })
  }
  console.log(`smoke (${label}): JSON, stream and SSE answered`)
}
