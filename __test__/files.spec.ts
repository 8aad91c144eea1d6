/** Files and static directories served by Rust: validators, 304, ranges, traversal, no JS per request. */
import test from 'ava'
import { execFileSync } from 'node:child_process'
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
  const bad = await fetch(`${url}/hello`, { headers: { range: 'bytes=0-1,x-5' } })
  t.is(bad.status, 200, 'a malformed spec in the list: the Range is ignored')
  t.is(await bad.text(), 'Hello, file!\n')
})

/** Parses a `multipart/byteranges` body with Python's email package (an independent MIME parser). */
function byteranges(contentType: string, body: Buffer): Array<{ range: string; type: string; data: Buffer }> {
  const script = `
import sys, json, email.parser, email.policy
raw = sys.stdin.buffer.read()
msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
assert msg.is_multipart(), 'not multipart'
parts = [{'range': p['content-range'], 'type': p['content-type'], 'data': p.get_payload(decode=True).hex()} for p in msg.iter_parts()]
print(json.dumps({'defects': [str(d) for d in msg.defects], 'parts': parts}))`
  const input = Buffer.concat([Buffer.from(`Content-Type: ${contentType}\r\n\r\n`), body])
  const out = JSON.parse(execFileSync('python3', ['-c', script], { input }).toString()) as { defects: string[]; parts: Array<{ range: string; type: string; data: string }> }
  if (out.defects.length) throw new Error(`MIME defects: ${out.defects.join('; ')}`)
  return out.parts.map((p) => ({ range: p.range, type: p.type, data: Buffer.from(p.data, 'hex') }))
}

test('several ranges are answered as multipart/byteranges with an exact length', async (t) => {
  const { app, url } = await filesApp()
  t.teardown(() => app.close({ timeout: 100 }))
  const res = await fetch(`${url}/big`, { headers: { range: 'bytes=1000000-1000099, 0-9, 500000-700000' } })
  t.is(res.status, 206)
  const type = res.headers.get('content-type')!
  t.regex(type, /^multipart\/byteranges; boundary=CZ[0-9a-f]{32}$/)
  t.is(res.headers.get('content-range'), null, 'the ranges are in the parts')
  const body = Buffer.from(await res.arrayBuffer())
  t.is(Number(res.headers.get('content-length')), body.length)
  const parts = byteranges(type, body)
  t.deepEqual(
    parts.map((p) => p.range),
    [`bytes 0-9/${big.length}`, `bytes 500000-700000/${big.length}`, `bytes 1000000-1000099/${big.length}`],
    'sorted by position',
  )
  t.true(parts.every((p) => p.type === 'application/octet-stream'))
  t.true(parts[0]!.data.equals(big.subarray(0, 10)))
  t.is(sha(parts[1]!.data), sha(big.subarray(500000, 700001)), 'a part larger than one read is streamed whole')
  t.true(parts[2]!.data.equals(big.subarray(1000000, 1000100)))
})

test('overlapping and nearby ranges are coalesced, unsatisfiable ones dropped, and too many ignored', async (t) => {
  const { app, url } = await filesApp()
  t.teardown(() => app.close({ timeout: 100 }))
  const merged = await fetch(`${url}/hello`, { headers: { range: 'bytes=0-1,4-5' } })
  t.is(merged.status, 206, 'a 2-byte gap costs less than a part head: one range')
  t.is(merged.headers.get('content-range'), 'bytes 0-5/13')
  t.is(await merged.text(), 'Hello,')
  const dropped = await fetch(`${url}/hello`, { headers: { range: 'bytes=500-,7-10' } })
  t.is(dropped.status, 206)
  t.is(dropped.headers.get('content-range'), 'bytes 7-10/13')
  t.is(await dropped.text(), 'file')
  const none = await fetch(`${url}/hello`, { headers: { range: 'bytes=500-,600-' } })
  t.is(none.status, 416)
  t.is(none.headers.get('content-range'), 'bytes */13')
  await none.arrayBuffer()
  const specs = Array.from({ length: 33 }, (_, i) => `${i * 1000}-${i * 1000}`).join(',')
  const many = await fetch(`${url}/big`, { headers: { range: `bytes=${specs}` } })
  t.is(many.status, 200, 'more than 32 ranges: the whole file')
  t.is(sha(new Uint8Array(await many.arrayBuffer())), sha(big))
  const specs32 = Array.from({ length: 32 }, (_, i) => `${i * 1000}-${i * 1000}`).join(',')
  const most = await fetch(`${url}/big`, { headers: { range: `bytes=${specs32}` } })
  t.is(most.status, 206)
  const parts = byteranges(most.headers.get('content-type')!, Buffer.from(await most.arrayBuffer()))
  t.is(parts.length, 32)
  t.true(parts.every((p, i) => p.data.length === 1 && p.data[0] === big[i * 1000]))
})

test('a HEAD with several ranges gets the multipart head and no body', async (t) => {
  const { app, port } = await filesApp()
  t.teardown(() => app.close({ timeout: 100 }))
  const raw = await rawExchange(port, 'HEAD /big HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0,5000-5000\r\nConnection: close\r\n\r\n')
  const res = parseRaw(raw)
  t.is(res.statusLine, 'HTTP/1.1 206 Partial Content')
  t.regex(res.headers['content-type'] ?? '', /^multipart\/byteranges/)
  t.true(Number(res.headers['content-length']) > 2)
  t.is(res.body.length, 0)
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
