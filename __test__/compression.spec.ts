/** Compression in Rust: negotiation, thresholds, per-stream overrides, and SSE flushed per event. */
import test from 'ava'
import http from 'node:http'
import zlib from 'node:zlib'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { file, sse, StreamingResponse } from '../index.js'
import { deferred, serve, within } from './helpers.js'

const big = { rows: Array.from({ length: 500 }, (_, i) => ({ id: i, name: `row number ${i}` })) }
const bigText = JSON.stringify(big)

/** A GET with node:http, which (unlike fetch) leaves the body encoded. */
function get(port: number, path: string, acceptEncoding?: string) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: acceptEncoding ? { 'accept-encoding': acceptEncoding } : {} }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

function routes(app: import('../index.js').Catzilla) {
  app.get('/big', () => big)
  app.get('/small', () => ({ ok: true }))
  app.get('/png', () => new Response(new Uint8Array(5000), { headers: { 'content-type': 'image/png' } }))
  app.get('/pre', () => new Response('already', { headers: { 'content-type': 'text/plain', 'content-encoding': 'identity-ish' } }))
  app.get('/plain-stream', () => new StreamingResponse(['a'.repeat(3000), 'b'.repeat(3000)], { contentType: 'text/plain', compress: false }))
}

test('compression is off by default', async (t) => {
  const { app, port } = await serve(routes)
  t.teardown(() => app.close({ timeout: 100 }))
  const res = await get(port, '/big', 'gzip, br')
  t.is(res.headers['content-encoding'], undefined)
  t.is(res.body.toString(), bigText)
})

test('brotli is preferred, gzip used when it is all the client takes, identity otherwise', async (t) => {
  const { app, port } = await serve(routes, { compression: true })
  t.teardown(() => app.close({ timeout: 100 }))
  const br = await get(port, '/big', 'gzip, deflate, br')
  t.is(br.headers['content-encoding'], 'br')
  t.is(br.headers.vary, 'accept-encoding')
  t.true(br.body.length < bigText.length / 3, `${br.body.length} bytes`)
  t.is(zlib.brotliDecompressSync(br.body).toString(), bigText)
  const gz = await get(port, '/big', 'gzip')
  t.is(gz.headers['content-encoding'], 'gzip')
  t.is(Number(gz.headers['content-length']), gz.body.length)
  t.is(zlib.gunzipSync(gz.body).toString(), bigText)
  const none = await get(port, '/big', 'br;q=0, gzip;q=0')
  t.is(none.headers['content-encoding'], undefined)
  t.is(none.headers.vary, 'accept-encoding')
  t.is(none.body.toString(), bigText)
})

test('small bodies, binary types and already-encoded bodies are left alone', async (t) => {
  const { app, port } = await serve(routes, { compression: { threshold: 1024 } })
  t.teardown(() => app.close({ timeout: 100 }))
  const small = await get(port, '/small', 'gzip')
  t.is(small.headers['content-encoding'], undefined)
  t.is(small.body.toString(), '{"ok":true}')
  t.is((await get(port, '/png', 'gzip')).headers['content-encoding'], undefined)
  const pre = await get(port, '/pre', 'gzip')
  t.is(pre.headers['content-encoding'], 'identity-ish')
  t.is(pre.body.toString(), 'already')
  const opted = await get(port, '/plain-stream', 'gzip')
  t.is(opted.headers['content-encoding'], undefined)
  t.is(opted.body.length, 6000)
})

test('files keep their validators and are not compressed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cz-gz-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'a.txt'), 'text '.repeat(1000))
  const { app, port } = await serve((app) => app.get('/f', () => file(join(dir, 'a.txt'))), { compression: true })
  t.teardown(() => app.close({ timeout: 100 }))
  const res = await get(port, '/f', 'gzip')
  t.is(res.headers['content-encoding'], undefined)
  t.truthy(res.headers.etag)
  t.is(res.body.length, 5000)
})

test('a compressed SSE stream delivers each event before the next one is produced', async (t) => {
  const gates = [deferred(), deferred(), deferred()]
  const { app, port } = await serve(
    (app) =>
      app.get('/events', () =>
        sse(
          (async function* () {
            for (let i = 0; i < 3; i++) {
              yield { id: i, data: `event ${i}` }
              await gates[i]!.promise // produced only after the client decoded this one
            }
          })(),
        ),
      ),
    { compression: true },
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const decoded: string[] = []
  await within(
    new Promise<void>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/events', headers: { 'accept-encoding': 'gzip' } }, (res) => {
        t.is(res.headers['content-encoding'], 'gzip')
        const gunzip = zlib.createGunzip()
        res.pipe(gunzip)
        let text = ''
        gunzip.on('data', (d: Buffer) => {
          text += d.toString()
          const events = text.split('\n\n').filter((e) => e.includes('data:'))
          while (decoded.length < events.length) {
            decoded.push(events[decoded.length]!)
            gates[decoded.length - 1]!.resolve()
          }
          if (decoded.length === 3) {
            res.destroy()
            resolve()
          }
        })
        gunzip.on('error', reject)
      }).on('error', reject)
    }),
    10_000,
    'three events decoded one by one',
  )
  t.deepEqual(decoded, ['id: 0\ndata: event 0', 'id: 1\ndata: event 1', 'id: 2\ndata: event 2'])
})

test('a stream can opt in to compression when the app has it off', async (t) => {
  const { app, port } = await serve((app) =>
    app.get('/s', () => new StreamingResponse(['x'.repeat(5000), 'y'.repeat(5000)], { contentType: 'text/plain', compress: true })),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const res = await get(port, '/s', 'gzip')
  t.is(res.headers['content-encoding'], 'gzip')
  t.is(zlib.gunzipSync(res.body).toString(), 'x'.repeat(5000) + 'y'.repeat(5000))
})
