/** Compression in Rust: negotiation, thresholds, per-stream overrides, and SSE flushed per event. */
import test from 'ava'
import http from 'node:http'
import zlib from 'node:zlib'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Catzilla, file, sse, StreamingResponse } from '../index.js'
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
  app.get('/lines', () => new StreamingResponse(['line 0\n', 'line 1\n', 'line 2\n'], { contentType: 'text/plain' }))
  app.get('/plain-stream', () => new StreamingResponse(['a'.repeat(3000), 'b'.repeat(3000)], { contentType: 'text/plain', compress: false }))
}

/** Decodes zstd with Node's zlib where it has it (22.15+), else with the `zstd` command. */
function unzstd(body: Buffer): string {
  const z = zlib as unknown as { zstdDecompressSync?: (b: Buffer) => Buffer }
  if (z.zstdDecompressSync) return z.zstdDecompressSync(body).toString()
  return execFileSync('zstd', ['-d', '-c', '-q'], { input: body }).toString()
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
  const deflate = await get(port, '/big', 'deflate')
  t.is(deflate.headers['content-encoding'], 'deflate')
  t.is(zlib.inflateSync(deflate.body).toString(), bigText, 'deflate is the zlib format (RFC 9110 §8.4.1.2)')
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

for (const coding of ['gzip', 'deflate'] as const) test(`a ${coding} SSE stream delivers each event before the next one is produced`, async (t) => {
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
      http.get({ host: '127.0.0.1', port, path: '/events', headers: { 'accept-encoding': coding } }, (res) => {
        t.is(res.headers['content-encoding'], coding)
        const gunzip = coding === 'gzip' ? zlib.createGunzip() : zlib.createInflate()
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

test('zstd is offered, and the client q-values decide before the server order', async (t) => {
  const { app, port } = await serve(routes, { compression: true })
  t.teardown(() => app.close({ timeout: 100 }))
  const z = await get(port, '/big', 'zstd')
  t.is(z.headers['content-encoding'], 'zstd')
  t.is(Number(z.headers['content-length']), z.body.length)
  t.is(unzstd(z.body), bigText)
  t.is((await get(port, '/big', 'gzip, deflate, br, zstd')).headers['content-encoding'], 'br', 'ties go to the server order')
  t.is((await get(port, '/big', 'br;q=0.5, zstd;q=0.9')).headers['content-encoding'], 'zstd')
  t.is((await get(port, '/big', 'gzip;q=1, br;q=0.8')).headers['content-encoding'], 'gzip')
  const streamed = await get(port, '/lines', 'zstd')
  t.is(streamed.headers['content-encoding'], 'zstd')
  t.is(unzstd(streamed.body), 'line 0\nline 1\nline 2\n')
})

test('an app can limit the codings and their order', async (t) => {
  const { app, port } = await serve(routes, { compression: { encodings: ['gzip', 'zstd'] } })
  t.teardown(() => app.close({ timeout: 100 }))
  t.is((await get(port, '/big', 'br, zstd, gzip')).headers['content-encoding'], 'gzip')
  t.is((await get(port, '/big', 'br, zstd')).headers['content-encoding'], 'zstd')
  t.is((await get(port, '/big', 'br, deflate')).headers['content-encoding'], undefined)
  t.throws(() => new Catzilla({ compression: { encodings: ['lzma' as 'br'] } }), { message: /unknown compression encoding lzma/ })
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
