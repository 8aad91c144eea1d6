/** Security regressions found by testing from outside: SSE injection, static symlink escapes, file() confinement. */
import test from 'ava'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EventSource } from 'eventsource'
import WebSocket from 'ws'
import { CatzillaError, encodeSSE, file, sse } from '../index.js'
import { dechunk, parseRaw, rawExchange, serve, sleep, within } from './helpers.js'

const base = mkdtempSync(join(tmpdir(), 'cz-security-'))
const root = join(base, 'root')
mkdirSync(join(root, 'sub'), { recursive: true })
mkdirSync(join(root, 'files'))
writeFileSync(join(base, 'outside.txt'), 'OUTSIDE SECRET')
writeFileSync(join(root, '.env'), 'SECRET=1')
writeFileSync(join(root, 'ok.txt'), 'ok')
writeFileSync(join(root, 'files', 'report.txt'), 'report')
writeFileSync(join(root, 'files', '.hidden'), 'hidden')
symlinkSync(join(base, 'outside.txt'), join(root, 'sub', 'index.html'))
symlinkSync(join(root, '.env'), join(root, 'visible'))
symlinkSync(join(base, 'outside.txt'), join(root, 'files', 'escape.txt'))
test.after.always(() => rmSync(base, { recursive: true, force: true }))

/** Collects EventSource events of every type seen on `url` until `n` messages arrived. */
async function collect(url: string, n: number, types: string[] = ['message', 'evil']) {
  const es = new EventSource(url)
  const got: Array<{ type: string; data: string; id: string }> = []
  for (const type of types) es.addEventListener(type, (e) => got.push({ type, data: e.data, id: e.lastEventId }))
  await within(new Promise((r) => es.addEventListener('open', r)), 5000, 'EventSource open')
  return {
    got,
    done: async () => {
      await within((async () => { while (got.length < n) await sleep(10) })(), 5000, `${n} events`)
      await sleep(100) // anything forged would arrive with the real events
      es.close()
      return got
    },
  }
}

test('regression: SSE event injection through topics — a lone CR in published data stays inside one event', async (t) => {
  const { app, url } = await serve((app) => app.get('/feed', () => sse.topic('t')))
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await collect(`${url}/feed`, 2)
  await sleep(50)
  const attack = 'a\rid: 666\r\revent: evil\rdata: x'
  t.is(app.publish('t', attack), 1)
  t.is(app.publish('t', Buffer.from(attack)), 1)
  const got = await c.done()
  const data = 'a\nid: 666\n\nevent: evil\ndata: x'
  t.deepEqual(got, [
    { type: 'message', data, id: '1' },
    { type: 'message', data, id: '2' },
  ])
})

test('regression: SSE event injection through topics — app.publish and ws.publish refuse event names with CR, LF or NUL', async (t) => {
  const { app, url, port } = await serve((app) => {
    app.get('/feed', () => sse.topic('t'))
    app.ws('/ws', {
      message: (ws, data) => {
        try {
          ws.publish('t', 'x', { event: String(data) })
          ws.send('published')
        } catch (err) {
          ws.send((err as CatzillaError).code)
        }
      },
    })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await collect(`${url}/feed`, 1)
  await sleep(50)
  for (const bad of ['ok\r\ndata: evil', 'ok\revil', 'ok\nid: 9', 'ok\0']) {
    const err = t.throws(() => app.publish('t', 'x', { event: bad }), { instanceOf: CatzillaError })
    t.is(err?.code, 'CZ_SSE_FIELD')
  }
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
  await within(new Promise((r) => ws.once('open', r)), 5000, 'open')
  const reply = (text: string) =>
    within(new Promise<string>((r) => { ws.once('message', (d) => r(d.toString())); ws.send(text) }), 5000, 'reply')
  t.is(await reply('evil\r\n\r\ndata: injected'), 'CZ_SSE_FIELD')
  t.is(await reply('fine'), 'published')
  ws.close()
  app.publish('t', 'last', { event: 'message' })
  const got = await c.done()
  t.deepEqual(got.map((e) => e.data), ['last'], 'nothing refused reached the subscriber')
})

test('sse() encodes through the core encoder: CR, LF and CRLF split data, a bad event name cuts the stream after the good events', async (t) => {
  const errors: unknown[] = []
  const { app, port } = await serve((app) => {
    app.get('/s', () =>
      sse(
        (function* () {
          yield { id: 1, data: 'a\rb\r\nc\nd' }
          yield { event: 'bad\revent: evil', data: 'x' }
          yield 'never'
        })(),
        { heartbeat: 0, onError: (err) => errors.push(err) },
      ),
    )
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const raw = await rawExchange(port, 'GET /s HTTP/1.1\r\nHost: x\r\n\r\n', 3000)
  const { statusLine, body } = parseRaw(raw)
  t.is(statusLine, 'HTTP/1.1 200 OK')
  const { chunks, terminated } = dechunk(body)
  t.is(Buffer.concat(chunks).toString(), 'id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n')
  t.false(terminated, 'the stream is cut, not ended')
  await within((async () => { while (errors.length === 0) await sleep(10) })(), 3000, 'onError')
  t.is((errors[0] as CatzillaError).code, 'CZ_SSE_FIELD')
})

test('sse() with a function source that declares a parameter still goes through the encoder', async (t) => {
  const { app, port } = await serve((app) => {
    // eslint-disable-next-line @typescript-eslint/no-unused-vars
    app.get('/f', () => sse(function* (_unused?: number) { yield 'a\rb' }, { heartbeat: 0 }))
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const { chunks } = dechunk(parseRaw(await rawExchange(port, 'GET /f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000)).body)
  t.is(Buffer.concat(chunks).toString(), 'data: a\ndata: b\n\n')
  t.throws(() => sse([], { retry: 5e9 }), { message: /4294967295/ })
  t.throws(() => sse.topic('x', { heartbeat: -1 }), { message: /heartbeat/ })
})

test('encodeSSE uses the same encoder and refuses the same fields', (t) => {
  t.is(encodeSSE({ id: 7, event: 'up', data: 'x\ry' }), 'id: 7\nevent: up\ndata: x\ndata: y\n\n')
  t.is(encodeSSE('é😀\r\nz'), 'data: é😀\ndata: z\n\n')
  t.is(encodeSSE({ n: 1 }), 'data: {"n":1}\n\n')
  for (const bad of [{ id: 'a\rb' }, { event: 'a\nb' }, { id: 'a\0' }, { retry: 1.5 }, { retry: -1 }]) {
    const err = t.throws(() => encodeSSE(bad), { instanceOf: CatzillaError })
    t.is(err?.code, 'CZ_SSE_FIELD')
  }
})

test('regression: app.static symlink escape — an index.html or a plain name linking outside the root or to a dotfile is 404', async (t) => {
  const { app, url } = await serve((app) => app.static('/static', root))
  t.teardown(() => app.close({ timeout: 100 }))
  for (const path of ['/static/sub/', '/static/sub', '/static/visible', '/static/.env', '/static/files/escape.txt']) {
    const res = await fetch(url + path)
    const text = await res.text()
    t.is(res.status, 404, path)
    t.false(text.includes('SECRET'), path)
  }
  t.is(await (await fetch(`${url}/static/ok.txt`)).text(), 'ok')
})

test('regression: file() confinement — file(name, { root }) keeps decoded params inside root', async (t) => {
  const { app, url } = await serve((app) => {
    app.get('/download/:name', (req) => file(req.params.name, { root: join(root, 'files') }))
    app.get('/abs', () => file(join(base, 'outside.txt'), { root: join(root, 'files') }))
    app.get('/dots/:name', (req) => file(req.params.name, { root: join(root, 'files'), dotfiles: true }))
    app.get('/noroot', () => file('x.txt', { root: join(base, 'missing') }))
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const ok = await fetch(`${url}/download/report.txt`)
  t.is(ok.status, 200)
  t.is(await ok.text(), 'report')
  for (const path of [
    '/download/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fhostname',
    // Probing outside the root: not-a-directory, missing and unreadable all answer the same 404.
    '/download/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fhostname%2F',
    '/download/..%2F..%2F..%2F..%2F..%2F..%2Fnope%2F',
    '/download/..%2F..%2F..%2F..%2F..%2F..%2Froot%2Fx',
    '/download/..%2F..%2Foutside.txt',
    '/download/escape.txt',
    '/download/.hidden',
    '/download/%2Fetc%2Fhostname',
    '/abs',
    '/noroot',
  ]) {
    const res = await fetch(url + path)
    t.is(res.status, 404, path)
    await res.arrayBuffer()
  }
  t.is(await (await fetch(`${url}/dots/.hidden`)).text(), 'hidden')
})
