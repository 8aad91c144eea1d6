/** Operations: Prometheus metrics parsed by the official Python parser, and an access log that sees every response. */
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { execFileSync } from 'node:child_process'
import WsClient from 'ws'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ResponseInfo } from '../index.js'
import { Catzilla, sse, StreamingResponse } from '../index.js'
import { deferred, openRaw, rawExchange, serve, within } from './helpers.js'

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Parses an exposition with `prometheus_client`'s OpenMetrics parser (PyPI); undefined when it is not installed outside CI. */
function parseMetrics(t: ExecutionContext, text: string): Sample[] | undefined {
  const script = `
import sys, json
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append({'name': s.name, 'labels': s.labels, 'value': s.value, 'type': fam.type})
print(json.dumps(out))`
  try {
    return JSON.parse(execFileSync('python3', ['-c', script], { input: text, stdio: ['pipe', 'pipe', 'pipe'] }).toString()) as Sample[]
  } catch (err) {
    const missing = String((err as { stderr?: Buffer }).stderr ?? err).includes("No module named 'prometheus_client'")
    if (missing && !process.env.CI) {
      t.log('prometheus_client not installed: pip install -r requirements-test.txt')
      return undefined
    }
    throw err
  }
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value

test('the metrics route is valid OpenMetrics and counts requests, statuses, limits and streams', async (t) => {
  const { app, url, port } = await serve(
    (app) => {
      app.get('/ok', () => ({ ok: true }))
      app.post('/created', () => new Response('made', { status: 201 }))
      app.get('/boom', () => {
        throw new Error('boom')
      })
      app.get('/events', () => sse([{ data: 'one' }, { data: 'two' }]))
      app.metrics('/metrics')
    },
    { limits: { maxBodySize: 1024 } },
  )
  t.teardown(() => app.close({ timeout: 100 }))
  for (let i = 0; i < 3; i++) await (await fetch(`${url}/ok`)).text()
  await (await fetch(`${url}/created`, { method: 'POST', body: 'x' })).text()
  await (await fetch(`${url}/nope`)).text()
  await (await fetch(`${url}/boom`)).text()
  await (await fetch(`${url}/events`)).text()
  await rawExchange(port, `POST /created HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n`, 1000)

  const res = await fetch(`${url}/metrics`)
  t.is(res.status, 200)
  t.is(res.headers.get('content-type'), 'application/openmetrics-text; version=1.0.0; charset=utf-8')
  const samples = parseMetrics(t, await res.text())
  if (!samples) return t.pass()
  t.is(value(samples, 'catzilla_http_requests_total', { method: 'GET', status_class: '2xx' }), 4, '3 × /ok and the SSE stream')
  t.is(value(samples, 'catzilla_http_requests_total', { method: 'POST', status_class: '2xx' }), 1)
  t.is(value(samples, 'catzilla_http_requests_total', { method: 'GET', status_class: '4xx' }), 1, 'the 404 answered in Rust')
  t.is(value(samples, 'catzilla_http_requests_total', { method: 'GET', status_class: '5xx' }), 1)
  t.is(value(samples, 'catzilla_http_requests_total', { method: 'POST', status_class: '4xx' }), 1, 'the 413 answered in Rust')
  t.is(value(samples, 'catzilla_limit_hits_total', { kind: 'body_too_large' }), 1)
  t.is(value(samples, 'catzilla_http_not_found_total'), 1)
  t.is(value(samples, 'catzilla_streams_total'), 1)
  t.is(value(samples, 'catzilla_streams_active'), 0)
  t.true(value(samples, 'catzilla_stream_bytes_total')! > 0)
  // Histograms: cumulative buckets ending at +Inf == count, with a sum.
  const count = value(samples, 'catzilla_http_request_duration_seconds_count')!
  t.is(count, 8, 'every finished request before this scrape')
  t.is(value(samples, 'catzilla_http_request_duration_seconds_bucket', { le: '+Inf' }), count)
  t.true(value(samples, 'catzilla_http_request_duration_seconds_sum')! > 0)
  t.is(value(samples, 'catzilla_http_time_to_first_byte_seconds_count'), 8)
  const now = app.metricsText().split('\n').find((l) => l.startsWith('catzilla_http_requests_total{method="GET",status_class="2xx"}'))
  t.is(now, 'catzilla_http_requests_total{method="GET",status_class="2xx"} 5', 'the scrape itself counted once it finished')
})

test('a metrics route with auth answers 401 without the token and serves it with it', async (t) => {
  const { app, url } = await serve((app) => {
    app.metrics('/metrics', { auth: { bearer: 's3cret-token' } })
    app.metrics('/basic-metrics', { auth: { username: 'prom', password: 'pä55' } })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const none = await fetch(`${url}/metrics`)
  t.is(none.status, 401)
  t.is(none.headers.get('www-authenticate'), 'Bearer')
  await none.text()
  const wrong = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer s3cret-tokeN' } })
  t.is(wrong.status, 401)
  await wrong.text()
  const ok = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer s3cret-token' } })
  t.is(ok.status, 200)
  t.regex(await ok.text(), /# EOF\n$/)
  const basic = await fetch(`${url}/basic-metrics`, { headers: { authorization: `Basic ${Buffer.from('prom:pä55').toString('base64')}` } })
  t.is(basic.status, 200)
  await basic.text()
  const noBasic = await fetch(`${url}/basic-metrics`)
  t.is(noBasic.headers.get('www-authenticate'), 'Basic realm="metrics"')
  await noBasic.text()
  t.throws(() => new Catzilla().metrics('/m', { auth: { bearer: 'has space' } }), { instanceOf: TypeError })
})

test('onResponse sees every response, including those answered in Rust', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cz-ops-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'a.txt'), 'static file')
  const seen: ResponseInfo[] = []
  let secondHookCalls = 0
  const { app, url, port } = await serve(
    (app) => {
      app.get('/json', () => ({ hello: 'world' }))
      app.post('/upload', async (req) => (await req.bytes()).length)
      app.get('/stream', () => sse([{ data: 'x' }]))
      app.get('/slow', async (req) => {
        await new Promise((r) => req.signal.addEventListener('abort', r))
        return 'never'
      })
      app.static('/files', dir)
      app.ws('/ws', {})
      app.onResponse((info) => seen.push(info))
      app.onResponse(() => {
        if (secondHookCalls++ === 0) throw new Error('a failing hook does not stop the others (expected in this test)')
      })
    },
    { limits: { maxBodySize: 16, maxUrlLength: 100 } },
  )
  t.teardown(() => app.close({ timeout: 100 }))
  await (await fetch(`${url}/json`)).text()
  await (await fetch(`${url}/stream`)).text()
  await (await fetch(`${url}/files/a.txt`)).text()
  await (await fetch(`${url}/missing`)).text()
  await (await fetch(`${url}/json`, { method: 'DELETE' })).text()
  await (await fetch(`${url}/${'x'.repeat(200)}`)).text()
  await rawExchange(port, 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n', 500)
  await rawExchange(port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n', 200) // the client leaves before the answer
  await rawExchange(port, 'HEAD /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 500)
  await rawExchange(port, `GET /json HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(20_000)}\r\n\r\n`, 500)
  await within(
    (async () => {
      while (seen.length < 10) await new Promise((r) => setTimeout(r, 10))
    })(),
    5000,
    'ten exchanges reported',
  )
  const by = (url: string, method = 'GET') => seen.find((s) => s.url === url && s.method === method)
  t.like(by('/json'), { status: 200, stream: false, aborted: false, remote: '127.0.0.1' })
  t.is(by('/json')!.bytes, JSON.stringify({ hello: 'world' }).length)
  t.true(by('/json')!.durationMs >= by('/json')!.ttfbMs!)
  t.like(by('/stream'), { status: 200, stream: true, aborted: false })
  t.like(by('/files/a.txt'), { status: 200, bytes: 11, stream: false })
  t.like(by('/missing'), { status: 404 })
  t.like(by('/json', 'DELETE'), { status: 405 })
  t.like(by(`/${'x'.repeat(200)}`), { status: 414 })
  t.like(by('/upload', 'POST'), { status: 413 })
  t.like(by('/slow'), { status: 0, aborted: true, ttfbMs: undefined })
  t.like(by('/json', 'HEAD'), { status: 200, aborted: false, bytes: 0 })
  t.like(by('-', '-'), { status: 431, remote: '127.0.0.1' }, 'a head too large is logged like nginx does, without a request line')
  t.is(secondHookCalls, seen.length, 'a hook that threw once is still called for every exchange')
})

test('onResponse must be set before listen', async (t) => {
  const { app } = await serve(() => {})
  t.teardown(() => app.close({ timeout: 100 }))
  t.throws(() => app.onResponse(() => {}), { message: /before listen/ })
  t.throws(() => app.metrics('/m'), { message: /before listen/ })
})

test('streams() lists live streams and WebSockets with their progress, and closeStream cuts one so its finally runs', async (t) => {
  const finished = deferred<string>()
  const { app, url, port } = await serve((app) => {
    app.get('/firehose', () =>
      new StreamingResponse(
        (async function* () {
          try {
            for (;;) yield 'x'.repeat(16 * 1024)
          } finally {
            finished.resolve('finally ran')
          }
        })(),
        { bufferSize: 64 * 1024 },
      ),
    )
    app.ws('/ws', { open: (ws) => void ws.send('hello') })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  // A client that never reads: the ring fills and the producer waits.
  const socket = openRaw(port, '/firehose')
  socket.pause()
  t.teardown(() => socket.destroy())
  const ws = new WsClient(`${url.replace('http', 'ws')}/ws`)
  await new Promise((r) => ws.once('message', r))
  t.teardown(() => ws.close())
  let rows = app.streams()
  // Stalled once the kernel's buffers are full too: a ring at its 16 KiB floor reports a stall
  // for a moment after 4 chunks while the kernel still takes more (regression: flaky under load).
  for (let i = 0; i < 200 && !rows.some((r) => r.path === '/firehose' && r.stalledSince !== undefined && r.chunks > 4); i++) {
    await new Promise((r) => setTimeout(r, 20))
    rows = app.streams()
  }
  const stream = rows.find((r) => r.path === '/firehose')!
  t.like(stream, { kind: 'stream', method: 'GET', remote: '127.0.0.1', bufferSize: 64 * 1024 })
  // Stalled: the ring holds at most its size plus one chunk, and may be empty: once the socket
  // refuses writes, the producer's next chunk waits in JS, uncopied (see held-writes.spec.ts).
  t.true(stream.chunks > 4 && stream.bytes > 0 && stream.buffered <= (64 + 16) * 1024, JSON.stringify(stream))
  t.true(stream.stalledSince! <= Date.now() && stream.ageMs >= 0)
  const socketRow = rows.find((r) => r.path === '/ws')!
  t.like(socketRow, { kind: 'websocket', chunks: 1, bytes: 5, buffered: 0 })
  t.is(socketRow.stalledSince, undefined)
  t.true(app.closeStream(stream.id))
  t.is(await within(finished.promise, 5000, 'the generator finally'), 'finally ran')
  for (let i = 0; i < 100 && app.streams().some((r) => r.id === stream.id); i++) await new Promise((r) => setTimeout(r, 10))
  t.false(app.streams().some((r) => r.id === stream.id), 'gone from the list')
  t.false(app.closeStream(stream.id))
  t.false(app.closeStream(-1))
})

test('streams() lists SSE topic subscribers too, and closeStream cuts one', async (t) => {
  const { app, port } = await serve((app) => app.get('/news', () => sse.topic('news')))
  t.teardown(() => app.close({ timeout: 100 }))
  const sock = openRaw(port, '/news')
  t.teardown(() => sock.destroy())
  sock.resume()
  for (let i = 0; i < 100 && app.subscribers('news') === 0; i++) await new Promise((r) => setTimeout(r, 10))
  app.publish('news', 'hello subscribers')
  let row = app.streams().find((r) => r.kind === 'topic')
  for (let i = 0; i < 100 && !(row && row.bytes > 0); i++) {
    await new Promise((r) => setTimeout(r, 10))
    row = app.streams().find((r) => r.kind === 'topic')
  }
  t.like(row, { kind: 'topic', method: 'GET', path: '/news', chunks: 1 })
  t.true(row!.bytes >= 'data: hello subscribers\n\n'.length)
  t.true(app.closeStream(row!.id))
  for (let i = 0; i < 100 && app.subscribers('news') > 0; i++) await new Promise((r) => setTimeout(r, 10))
  t.is(app.subscribers('news'), 0)
  t.is(app.streams().length, 0)
})

test('a WebSocket is logged once it closes, with its lifetime and the bytes it sent', async (t) => {
  const seen: ResponseInfo[] = []
  const { app, url } = await serve((app) => {
    app.ws('/chat', { message: (ws, data) => void ws.send(data) })
    app.onResponse((info) => seen.push(info))
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const ws = new WsClient(`${url.replace('http', 'ws')}/chat`)
  await new Promise((r) => ws.once('open', r))
  ws.send('hello')
  await new Promise((r) => ws.once('message', r))
  await new Promise((r) => setTimeout(r, 150))
  t.is(seen.filter((s) => s.url === '/chat').length, 0, 'not logged while open')
  ws.close(1000)
  await within(
    (async () => {
      while (!seen.some((s) => s.url === '/chat')) await new Promise((r) => setTimeout(r, 10))
    })(),
    5000,
    'the WebSocket exchange',
  )
  const info = seen.find((s) => s.url === '/chat')!
  t.like(info, { method: 'GET', status: 101, stream: true, aborted: false, bytes: 5 })
  t.true(info.durationMs >= 150, `${info.durationMs} ms: the socket's lifetime`)
  t.true(info.ttfbMs! < info.durationMs)
})
