/** Multipart uploads through `req.parts()` with undici's FormData, raw bodies for the bad cases. */
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import type { Catzilla } from '../index.js'
import { rawExchange, parseRaw, serve } from './helpers.js'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

function uploadRoutes(app: Catzilla) {
  app.post('/upload', async (req) => {
    const fields: Record<string, string> = {}
    const files: Array<{ field: string; filename: string | undefined; type: string | undefined; size: number; sha: string; chunks: number }> = []
    for await (const part of req.parts()) {
      if (part.filename === undefined) {
        fields[part.name] = await part.text()
        continue
      }
      const h = createHash('sha256')
      let size = 0
      let chunks = 0
      for await (const c of part.body) {
        h.update(c)
        size += c.byteLength
        chunks++
      }
      files.push({ field: part.name, filename: part.filename, type: part.contentType, size, sha: h.digest('hex'), chunks })
    }
    return { fields, files }
  })
  app.post('/last-only', async (req) => {
    let last = ''
    for await (const part of req.parts()) if (part.name === 'last') last = await part.text()
    return { last }
  })
}

test('fields and files arrive in order with names, types and exact bytes', async (t) => {
  const { app, url } = await serve(uploadRoutes)
  t.teardown(() => app.close({ timeout: 100 }))
  const form = new FormData()
  form.append('title', 'héllo wörld')
  form.append('doc', new Blob(['plain text file'], { type: 'text/plain' }), 'notes.txt')
  form.append('empty', '')
  const res = await fetch(`${url}/upload`, { method: 'POST', body: form })
  t.is(res.status, 200)
  const body = (await res.json()) as { fields: Record<string, string>; files: Array<Record<string, unknown>> }
  t.deepEqual(body.fields, { title: 'héllo wörld', empty: '' })
  t.is(body.files.length, 1)
  t.like(body.files[0], { field: 'doc', filename: 'notes.txt', type: 'text/plain', size: 15, sha: sha(Buffer.from('plain text file')) })
})

test('a large upload is streamed part by part, never buffered whole', async (t) => {
  const { app, url } = await serve(uploadRoutes, { limits: { maxBodySize: 16 << 20 } })
  t.teardown(() => app.close({ timeout: 100 }))
  const data = randomBytes(3 * 1024 * 1024 + 7)
  const form = new FormData()
  form.append('blob', new Blob([data], { type: 'application/octet-stream' }), 'big.bin')
  const res = await fetch(`${url}/upload`, { method: 'POST', body: form })
  const body = (await res.json()) as { files: Array<{ size: number; sha: string; chunks: number }> }
  t.is(body.files[0]!.size, data.length)
  t.is(body.files[0]!.sha, sha(data))
  t.true(body.files[0]!.chunks > 4, `${body.files[0]!.chunks} chunks`)
})

test('a streaming response can read the request parts after its head went out', async (t) => {
  // Once a stream starts, the request keeps only a copy of its Content-Type (not hyper's buffer
  // the head was read into): `req.parts()` must still find the boundary.
  const { app, url } = await serve(
    (a) =>
      a.post('/echo-parts', async function* (req) {
        yield 'started\n'
        for await (const part of req.parts()) {
          let size = 0
          for await (const c of part.body) size += c.byteLength
          yield `${part.name} ${size}\n`
        }
      }),
    { limits: { maxBodySize: 16 << 20 } },
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const form = new FormData()
  form.append('title', 'hello')
  form.append('blob', new Blob([randomBytes(1024 * 1024 + 3)]), 'big.bin')
  const res = await fetch(`${url}/echo-parts`, { method: 'POST', body: form })
  t.is(res.status, 200)
  t.is(await res.text(), 'started\ntitle 5\nblob 1048579\n')
})

test('parts the handler skips are drained, so later parts still arrive', async (t) => {
  const { app, url } = await serve(uploadRoutes, { limits: { maxBodySize: 16 << 20 } })
  t.teardown(() => app.close({ timeout: 100 }))
  const form = new FormData()
  form.append('skipped', new Blob([randomBytes(512 * 1024)]), 'skip.bin')
  form.append('also-skipped', 'x'.repeat(1000))
  form.append('last', 'kept')
  const res = await fetch(`${url}/last-only`, { method: 'POST', body: form })
  t.deepEqual(await res.json(), { last: 'kept' })
})

test('a body that is not multipart gets 415', async (t) => {
  const { app, url } = await serve(uploadRoutes)
  t.teardown(() => app.close({ timeout: 100 }))
  const res = await fetch(`${url}/upload`, { method: 'POST', body: JSON.stringify({ a: 1 }), headers: { 'content-type': 'application/json' } })
  t.is(res.status, 415)
  await res.arrayBuffer()
})

test('a malformed body answers 400, an oversized one 413, too many parts 413', async (t) => {
  const { app, url, port } = await serve(uploadRoutes, { limits: { maxBodySize: 256 * 1024 } })
  t.teardown(() => app.close({ timeout: 100 }))
  const cut = '--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nunfinished'
  const raw = await rawExchange(port, `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: ${cut.length}\r\nConnection: close\r\n\r\n${cut}`, 3000)
  t.regex(parseRaw(raw).statusLine, /^HTTP\/1\.1 400 /)

  const big = new FormData()
  big.append('f', new Blob([randomBytes(1024 * 1024)]), 'big.bin')
  const tooBig = await fetch(`${url}/upload`, { method: 'POST', body: big }).catch(() => undefined)
  // The 413 may come before undici has sent everything (it then reports a failed fetch): the
  // server's counter is the proof either way.
  t.true(tooBig === undefined || tooBig.status === 413, `status ${tooBig?.status}`)
  t.is(app.stats().bodyTooLarge, 1)

  const many = new FormData()
  for (let i = 0; i < 1001; i++) many.append(`f${i}`, '')
  const tooMany = await fetch(`${url}/upload`, { method: 'POST', body: many })
  t.is(tooMany.status, 413)
  await tooMany.arrayBuffer()
})

test('part headers keep their order and a header named __proto__ stays a plain header', async (t) => {
  const { app, port } = await serve((app) =>
    app.post('/heads', async (req) => {
      const out: Array<{ name: string; headers: Record<string, string>; proto: boolean }> = []
      for await (const part of req.parts()) {
        out.push({ name: part.name, headers: { ...part.headers }, proto: Object.getPrototypeOf(part.headers) === Object.prototype })
        await part.text()
      }
      return out
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const body =
    '--b1\r\nContent-Disposition: form-data; name="a"\r\n__proto__: x\r\nX-Custom: 1\r\n\r\nA\r\n' +
    '--b1\r\nContent-Disposition: form-data; name="b"; filename="b.txt"\r\nContent-Type: text/plain\r\n\r\nB\r\n--b1--\r\n'
  const raw = await rawExchange(
    port,
    `POST /heads HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b1\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  )
  const res = parseRaw(raw)
  t.is(res.statusLine, 'HTTP/1.1 200 OK')
  const parts = JSON.parse(res.body.toString()) as Array<{ name: string; headers: Record<string, string>; proto: boolean }>
  t.deepEqual(Object.keys(parts[0]!.headers), ['content-disposition', '__proto__', 'x-custom'])
  t.is(parts[0]!.headers['__proto__'], 'x')
  t.true(parts[0]!.proto, 'the headers object keeps its prototype')
  t.is(parts[1]!.headers['content-type'], 'text/plain')
})

test('parts() on a body that is not multipart answers 415 and leaves the body readable', async (t) => {
  const { app, url } = await serve((app) =>
    app.post('/either', async (req) => {
      try {
        req.parts()
        return 'parts'
      } catch (err) {
        return { status: (err as { status?: number }).status, text: await req.text() }
      }
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const res = await fetch(`${url}/either`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'plain body' })
  t.deepEqual(await res.json(), { status: 415, text: 'plain body' })
})
