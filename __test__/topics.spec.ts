/** Topics: `app.publish` fans out in Rust to WebSocket and SSE (`sse.topic`) subscribers, with replay. */
import test from 'ava'
import net from 'node:net'
import { EventSource } from 'eventsource'
import WebSocket from 'ws'
import { sse } from '../index.js'
import { serve, sleep, within } from './helpers.js'

/** Reads an SSE response until `done(text)` holds; returns the text. */
async function readUntil(res: Response, done: (text: string) => boolean): Promise<string> {
  const reader = res.body!.getReader()
  const dec = new TextDecoder()
  let text = ''
  await within(
    (async () => {
      while (!done(text)) {
        const { value, done: end } = await reader.read()
        if (end) break
        text += dec.decode(value, { stream: true })
      }
    })(),
    5000,
    'SSE events',
  )
  await reader.cancel()
  return text
}

const count = (text: string, what: string) => text.split(what).length - 1

test('publish reaches WebSocket and SSE subscribers and returns how many', async (t) => {
  const { app, url, port } = await serve((app) => {
    app.ws('/ws', { open: (ws) => void ws.subscribe('news') })
    app.get('/sse', () => sse.topic('news'))
  })
  t.teardown(() => app.close({ timeout: 100 }))
  const wsGot: string[] = []
  const c = new WebSocket(`ws://127.0.0.1:${port}/ws`)
  c.on('message', (d, binary) => wsGot.push(binary ? `bin:${(d as Buffer).toString('hex')}` : d.toString()))
  await within(new Promise((r) => c.once('open', r)), 5000, 'open')
  const res = await fetch(`${url}/sse`)
  t.is(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  t.is(res.headers.get('cache-control'), 'no-cache, no-transform')
  await sleep(50)
  t.is(app.subscribers('news'), 2)
  t.is(app.publish('news', 'plain'), 2)
  t.is(app.publish('news', { n: 1 }, { event: 'update' }), 2)
  t.is(app.publish('news', 'two\nlines'), 2)
  t.is(app.publish('news', Buffer.from([0xca, 0xfe])), 2)
  t.is(app.publish('elsewhere', 'nobody'), 0)
  const text = await readUntil(res, (s) => count(s, '\n\n') >= 4)
  t.is(
    text,
    'id: 1\ndata: plain\n\nid: 2\nevent: update\ndata: {"n":1}\n\nid: 3\ndata: two\ndata: lines\n\nid: 4\ndata: \uFFFD\uFFFD\n\n',
  )
  await within((async () => { while (wsGot.length < 4) await sleep(10) })(), 5000, 'ws messages')
  t.deepEqual(wsGot, ['plain', '{"n":1}', 'two\nlines', 'bin:cafe'])
  t.true(app.stats().deliveries >= 8)
  c.close()
})

test('ws.publish reaches everyone in the topic but the sender', async (t) => {
  const { app, port } = await serve((app) =>
    app.ws('/chat', {
      open: (ws) => void ws.subscribe('room'),
      message: (ws, data) => void ws.publish('room', data),
    }),
  )
  t.teardown(() => app.close({ timeout: 100 }))
  const clients = await Promise.all(
    [0, 1, 2].map(async () => {
      const c = new WebSocket(`ws://127.0.0.1:${port}/chat`)
      const got: string[] = []
      c.on('message', (d) => got.push(d.toString()))
      await within(new Promise((r) => c.once('open', r)), 5000, 'open')
      return { c, got }
    }),
  )
  await sleep(50)
  clients[0]!.c.send('hello room')
  await sleep(100)
  t.deepEqual(clients.map((x) => x.got), [[], ['hello room'], ['hello room']])
  for (const x of clients) x.c.close()
})

test('Last-Event-ID resumes exactly after the last event seen', async (t) => {
  const { app, url } = await serve((app) => app.get('/sse', () => sse.topic('feed')))
  t.teardown(() => app.close({ timeout: 100 }))
  for (let i = 1; i <= 5; i++) app.publish('feed', `m${i}`)
  const res = await fetch(`${url}/sse`, { headers: { 'last-event-id': '3' } })
  const text = await readUntil(res, (s) => s.includes('m5'))
  t.is(text, 'id: 4\ndata: m4\n\nid: 5\ndata: m5\n\n')
})

test('replay: n sends the last n messages to a new client, then live ones', async (t) => {
  const { app, url } = await serve((app) => app.get('/sse', () => sse.topic('feed', { replay: 2, retry: 1500 })))
  t.teardown(() => app.close({ timeout: 100 }))
  for (let i = 1; i <= 5; i++) app.publish('feed', `m${i}`)
  const res = await fetch(`${url}/sse`)
  setTimeout(() => app.publish('feed', 'live'), 50)
  const text = await readUntil(res, (s) => s.includes('live'))
  t.is(text, 'retry: 1500\n\nid: 4\ndata: m4\n\nid: 5\ndata: m5\n\nid: 6\ndata: live\n\n')
})

test('a Last-Event-ID older than the history gets an honest cz-gap event first', async (t) => {
  const { app, url } = await serve((app) => app.get('/sse', () => sse.topic('feed')), { topicHistory: 3 })
  t.teardown(() => app.close({ timeout: 100 }))
  for (let i = 1; i <= 10; i++) app.publish('feed', `m${i}`)
  const res = await fetch(`${url}/sse`, { headers: { 'last-event-id': '2' } })
  const text = await readUntil(res, (s) => s.includes('m10'))
  t.is(text, 'event: cz-gap\ndata: {"lastEventId":"2","oldest":8}\n\nid: 8\ndata: m8\n\nid: 9\ndata: m9\n\nid: 10\ndata: m10\n\n')
})

test('the eventsource client receives topic events with their ids', async (t) => {
  const { app, url } = await serve((app) => app.get('/sse', () => sse.topic('ticks')))
  t.teardown(() => app.close({ timeout: 100 }))
  const es = new EventSource(`${url}/sse`)
  t.teardown(() => es.close())
  await within(new Promise((r) => (es.onopen = r)), 5000, 'open')
  const got: string[] = []
  const all = new Promise<void>((resolve) => {
    es.addEventListener('tick', (e) => {
      got.push(`${e.lastEventId}:${e.data}`)
      if (got.length === 3) resolve()
    })
  })
  for (let i = 0; i < 3; i++) app.publish('ticks', `t${i}`, { event: 'tick' })
  await within(all, 5000, 'three ticks')
  t.deepEqual(got, ['1:t0', '2:t1', '3:t2'])
})

test('a stalled SSE subscriber is cut past maxBackpressure while the others keep receiving', async (t) => {
  const { app, url, port } = await serve((app) => {
    app.get('/small', () => sse.topic('firehose', { maxBackpressure: 64 * 1024, replay: false }))
    app.get('/sse', () => sse.topic('firehose', { replay: false })) // default: 1 MiB behind at most
  })
  t.teardown(() => app.close({ timeout: 100 }))
  // A raw client that sends the request and never reads.
  const stalled = net.connect(port, '127.0.0.1')
  stalled.write('GET /small HTTP/1.1\r\nHost: x\r\n\r\n')
  stalled.pause()
  t.teardown(() => stalled.destroy())
  const healthy = await fetch(`${url}/sse`)
  const reader = healthy.body!.getReader()
  let received = 0
  let tail = ''
  const reading = (async () => {
    const dec = new TextDecoder()
    while (!tail.endsWith('data: end\n\n')) {
      const { value, done } = await reader.read()
      if (done) throw new Error('healthy stream ended')
      received += value.length
      tail = (tail + dec.decode(value, { stream: true })).slice(-64)
    }
  })()
  await within((async () => { while (app.subscribers('firehose') < 2) await sleep(10) })(), 5000, 'two subscribers')
  // Publish until the stalled client (whose kernel buffers fill first) is cut.
  const payload = 'p'.repeat(16 * 1024)
  let expected = 0
  let seq = 0
  while (app.stats().subscribersDropped === 0 && seq < 4000) {
    app.publish('firehose', payload)
    seq++
    expected += `id: ${seq}\ndata: ${payload}\n\n`.length
    if (seq % 4 === 0) await sleep(1)
  }
  t.is(app.stats().subscribersDropped, 1, `published ${seq} messages`)
  t.is(app.subscribers('firehose'), 1)
  app.publish('firehose', 'end')
  seq++
  expected += `id: ${seq}\ndata: end\n\n`.length
  await within(reading, 10_000, 'healthy client reads everything')
  t.is(received, expected)
  await reader.cancel()
})
