/** Files and static directories served by Rust: validators, 304, ranges, traversal, no JS per request. */
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Catzilla, file } from '../index.js'
import { parseRaw, rawExchange, serve } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'cz-files-'))
const big = randomBytes(1024 * 1024 + 123) // larger than one 64 KiB read: streamed in chunks
writeFileSync(join(dir, 'hello.txt'), 'Hello, file!\n')
writeFileSync(join(dir, 'big.bin'), big)
writeFileSync(join(dir, 'index.html'), '<h1>home</h1>')
writeFileSync(join(dir, '.env'), 'SECRET=1')
mkdirSync(join(dir, 'css'))
writeFileSync(join(dir, 'css', 'site.css'), 'body{}')
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

async function filesApp() {
  return serve((app) => {
    app.get('/hello', () => file(join(dir, 'hello.txt')))
    app.get('/big', () => file(join(dir, 'big.bin')))
    app.get('/download', () => file(join(dir, 'hello.txt'), { filename: 'résumé.txt', headers: { 'cache-control': 'no-store' } }))
    app.get('/missing', () => file(join(dir, 'nope.txt')))
  })
}

test('file() sends the body with its type, length and validators', async (t) => {
  const { app, url } = await filesApp()
  t.teardown(() => app.close({ timeout: 100 }))
  const res = await fetch(`${url}/hello`)
  t.is(res.status, 200)
  t.is(res.headers.get('content-type'), 'text/plain; charset=utf-8')
  t.is(res.headers.get('content-length'), '13')
  t.is(res.headers.get('accept-ranges'), 'bytes')
  t.regex(res.headers.get('etag') ?? '', /^"[0-9a-f]+-[0-9a-f]+"$/)
  t.truthy(Date.parse(res.headers.get('last-modified') ?? ''))
  t.is(await res.text(), 'Hello, file!\n')
})

test('a large file arrives whole, streamed in bounded reads', async (t) => {
  const { app, url } = await filesApp()
  t.teardown(() => app.close({ timeout: 100 }))
  const res = await fetch(`${url}/big`)
  t.is(res.headers.get('content-length'), String(big.length))
  t.is(res.headers.get('content-type'), 'application/octet-stream')
  t.is(sha(new Uint8Array(await res.arrayBuffer())), sha(big))
})

test('If-None-Match and If-Modified-Since answer 304 without a body', async (t) => {
  const { app, url } = await filesApp()
  t.teardown(() => app.close({ timeout: 100 }))
  const first = await fetch(`${url}/hello`)
  const etag = first.headers.get('etag')!
  const modified = first.headers.get('last-modified')!
  await first.arrayBuffer()
  const a = await fetch(`${url}/hello`, { headers: { 'if-none-match': `"other", W/${etag}` } })
  t.is(a.status, 304)
  t.is(await a.text(), '')
  const b = await fetch(`${url}/hello`, { headers: { 'if-modified-since': modified } })
  t.is(b.status, 304)
  const c = await fetch(`${url}/hello`, { headers: { 'if-none-match': '"other"', 'if-modified-since': modified } })
  t.is(c.status, 200, 'If-None-Match wins over If-Modified-Since')
  await c.arrayBuffer()
})

test('ranges give 206 with Content-Range, 416 when unsatisfiable, and whole bodies otherwise', async (t) => {
  const { app, url } = await filesApp()
  t.teardown(() => app.close({ timeout: 100 }))
  const mid = await fetch(`${url}/big`, { headers: { range: 'bytes=100000-100009' } })
  t.is(mid.status, 206)
  t.is(mid.headers.get('content-range'), `bytes 100000-100009/${big.length}`)
  t.deepEqual(new Uint8Array(await mid.arrayBuffer()), new Uint8Array(big.subarray(100000, 100010)))
  const tail = await fetch(`${url}/big`, { headers: { range: 'bytes=-200000' } })
  t.is(tail.status, 206)
  t.is(sha(new Uint8Array(await tail.arrayBuffer())), sha(big.subarray(big.length - 200000)))
  const past = await fetch(`${url}/hello`, { headers: { range: 'bytes=500-' } })
  t.is(past.status, 416)
  t.is(past.headers.get('content-range'), 'bytes */13')
  await past.arrayBuffer()
  const several = await fetch(`${url}/hello`, { headers: { range: 'bytes=0-1,4-5' } })
  t.is(several.status, 200)
  t.is(await several.text(), 'Hello, file!\n')
})

test('If-Range lets a range through only for the current strong validator', async (t) => {
  const { app, url } = await filesApp()
  t.teardown(() => app.close({ timeout: 100 }))
  const etag = (await fetch(`${url}/hello`, { method: 'HEAD' })).headers.get('etag')!
  const fresh = await fetch(`${url}/hello`, { headers: { range: 'bytes=0-4', 'if-range': etag } })
  t.is(fresh.status, 206)
  t.is(await fresh.text(), 'Hello')
  const stale = await fetch(`${url}/hello`, { headers: { range: 'bytes=0-4', 'if-range': '"stale"' } })
  t.is(stale.status, 200)
  t.is(await stale.text(), 'Hello, file!\n')
  const weak = await fetch(`${url}/hello`, { headers: { range: 'bytes=0-4', 'if-range': `W/${etag}` } })
  t.is(weak.status, 200)
  await weak.arrayBuffer()
})

test('downloads get Content-Disposition with a UTF-8 name, and a missing file is 404', async (t) => {
  const { app, url } = await filesApp()
  t.teardown(() => app.close({ timeout: 100 }))
  const res = await fetch(`${url}/download`)
  t.is(res.headers.get('content-disposition'), `attachment; filename="r_sum_.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt`)
  t.is(res.headers.get('cache-control'), 'no-store')
  await res.arrayBuffer()
  const missing = await fetch(`${url}/missing`)
  t.is(missing.status, 404)
  await missing.arrayBuffer()
})

test('onFinish sees the status Rust chose for a file', async (t) => {
  const statuses: number[] = []
  const { app, url } = await serve((app) => {
    app.use(async (req, next) => {
      req.onFinish((info) => statuses.push(info.status))
      return next()
    })
    app.get('/f', () => file(join(dir, 'hello.txt')))
    app.get('/none', () => file(join(dir, 'nope.txt')))
  })
  t.teardown(() => app.close({ timeout: 100 }))
  await (await fetch(`${url}/f`)).arrayBuffer()
  await (await fetch(`${url}/f`, { headers: { range: 'bytes=0-0' } })).arrayBuffer()
  await (await fetch(`${url}/none`)).arrayBuffer()
  t.deepEqual(statuses, [200, 206, 404])
})

test('a static directory is served from Rust without running middleware', async (t) => {
  let middlewareCalls = 0
  const { app, url } = await serve((app) => {
    app.use(async (_req, next) => {
      middlewareCalls++
      return next()
    })
    app.static('/assets', dir, { maxAge: 60 })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const css = await fetch(`${url}/assets/css/site.css`)
  t.is(css.status, 200)
  t.is(css.headers.get('content-type'), 'text/css; charset=utf-8')
  t.is(css.headers.get('cache-control'), 'public, max-age=60')
  t.is(await css.text(), 'body{}')
  const index = await fetch(`${url}/assets/`)
  t.is(await index.text(), '<h1>home</h1>')
  const head = await fetch(`${url}/assets/big.bin`, { method: 'HEAD' })
  t.is(head.headers.get('content-length'), String(big.length))
  t.is(middlewareCalls, 0)
})

test('static paths cannot leave the directory or reach dotfiles', async (t) => {
  const { app, port } = await serve((app) => app.static('/assets', dir))
  t.teardown(() => app.close({ timeout: 100 }))
  for (const path of ['/assets/../package.json', '/assets/%2e%2e/%2e%2e/etc/passwd', '/assets/.env', '/assets/css%5c..%5c..%5cx', '/assets/a%00b', '/assets/nope']) {
    const raw = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 3000)
    t.regex(parseRaw(raw).statusLine, /^HTTP\/1\.1 404 /, path)
  }
})

test('app.static refuses a path that is not a directory', (t) => {
  const err = t.throws(() => new Catzilla().static('/x', join(dir, 'hello.txt')), { message: /not a readable directory/ })
  t.is((err as unknown as { code: string }).code, 'CZ_STATIC')
})
