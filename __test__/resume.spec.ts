/** WebSocket session resume: offline queues, reconnecting with the session id, bounds, expiry and `sendTo`. */
import test from 'ava'
import WebSocket from 'ws'
import type { Catzilla, WebSocket as CzSocket } from '../index.js'
import { closed, connect, deferred, launchChromium, next, serve, sleep, until } from './helpers.js'

interface Hello {
  type: string
  session: string
  recovered: boolean
  dropped: number
}

/** A client that records every message from the start (several can arrive in one packet). */
interface Client {
  ws: WebSocket
  hello: Hello
  header: string | undefined
  /** Waits for the next `n` messages after the session message. */
  take(n: number): Promise<string[]>
  /** Every message received so far, the session message first. */
  all: string[]
}

/**
 * Connects and reads the session message the server sends first. With `app`, also waits until
 * the route's `open` hook subscribed the socket to `room` (the session message is sent from
 * Rust at the upgrade, before the hook runs on the JS thread): `subscribers` must reach `count`.
 */
async function open(url: string, app?: Catzilla, count = 1): Promise<Client> {
  let header: string | undefined
  const ws = new WebSocket(url)
  ws.once('upgrade', (res) => {
    header = res.headers['x-catzilla-session'] as string | undefined
  })
  const got: string[] = []
  let taken = 1
  ws.on('message', (d) => got.push(d.toString()))
  const wait = (count: number, what: string) => until(() => got.length >= count, what, 5000, 5)
  await wait(1, 'session message')
  if (app) await until(() => app.subscribers('room') >= count, 'open hook subscribed')
  const hello = JSON.parse(got[0]!) as Hello
  const take = async (n: number) => {
    await wait(taken + n, `${n} message(s)`)
    taken += n
    return got.slice(taken - n, taken)
  }
  return { ws, hello, header, take, all: got }
}

/** Ends a client's connection without a close frame (what a lost network looks like). */
async function drop(app: Catzilla, ws: WebSocket): Promise<void> {
  const gone = closed(ws)
  ws.terminate()
  await gone
  // The server notices the reset on its side.
  await until(() => app.stats().wsActive === 0, 'server side close')
}

function chat(app: Catzilla, hooks: { closes?: number[]; expired?: string[]; opened?: CzSocket[] } = {}, resume: object | boolean = { ttl: 5000 }) {
  app.ws('/chat', {
    resume,
    open: (ws) => {
      ws.subscribe('room')
      hooks.opened?.push(ws)
    },
    message: (ws, data) => void ws.send(`echo:${data}`),
    close: (_ws, code) => void hooks.closes?.push(code),
    expired: (ws) => void hooks.expired?.push(ws.sessionId!),
  })
}

test('a reconnecting client gets exactly the messages it missed, in order, then live ones', async (t) => {
  const opened: CzSocket[] = []
  const { app, port } = await serve((app) => chat(app, { opened }))
  t.teardown(() => app.close({ timeout: 100 }))
  const url = `ws://127.0.0.1:${port}/chat`
  const first = await open(url, app)
  t.is(first.hello.type, 'cz-session')
  t.false(first.hello.recovered)
  t.regex(first.hello.session, /^[0-9a-f]{32}$/)
  t.is(first.header, first.hello.session, 'the 101 carries the same id')
  for (let i = 0; i < 3; i++) app.publish('room', `live ${i}`)
  t.deepEqual(await first.take(3), ['live 0', 'live 1', 'live 2'])

  await drop(app, first.ws)
  for (let i = 0; i < 5; i++) t.is(app.publish('room', `missed ${i}`), 1, 'the offline session still counts as a subscriber')
  t.is(app.sendTo(first.hello.session, 'direct'), 'sent')
  t.true(app.stats().wsOfflineBytes > 0)

  const second = await open(`${url}?cz_session=${first.hello.session}`)
  t.true(second.hello.recovered)
  t.is(second.hello.dropped, 0)
  t.not(second.hello.session, first.hello.session, 'every connection gets a new id')
  t.deepEqual(await second.take(6), ['missed 0', 'missed 1', 'missed 2', 'missed 3', 'missed 4', 'direct'])
  app.publish('room', 'after')
  t.deepEqual(await second.take(1), ['after'])
  t.true(opened.at(-1)!.recovered)
  t.is(opened.at(-1)!.sessionId, second.hello.session)
  t.is(opened.at(-1)!.id, opened[0]!.id, 'the resumed socket keeps its id')
  t.is(app.stats().wsResumed, 1)
  t.is(app.stats().wsOfflineBytes, 0)

  // The old id was used up: a second resume with it starts a fresh session.
  const third = await open(`${url}?cz_session=${first.hello.session}`)
  t.false(third.hello.recovered)
  second.ws.close()
  third.ws.close()
})

test('messages published while a client reconnects are neither lost nor duplicated', async (t) => {
  const { app, port } = await serve((app) => chat(app))
  t.teardown(() => app.close({ timeout: 100 }))
  const url = `ws://127.0.0.1:${port}/chat`
  const first = await open(url, app)

  // A publisher that never pauses, across the disconnect and the resume.
  let n = 0
  let publishing = true
  const publisher = (async () => {
    while (publishing) {
      app.publish('room', `m${n++}`)
      await sleep(1)
    }
  })()
  await sleep(50)
  await drop(app, first.ws)
  await sleep(50)
  const second = await open(`${url}?cz_session=${first.hello.session}`)
  t.true(second.hello.recovered)
  await sleep(50)
  publishing = false
  await publisher
  const last = `m${n - 1}`
  await until(() => second.all.at(-1) === last, 'the last message')
  const received = [...first.all.slice(1), ...second.all.slice(1)]
  // Messages the kernel had already accepted on the dead connection may be missing from the
  // first part; from the first one the server kept, the sequence has no gap and no duplicate.
  const numbers = received.map((m) => Number(m.slice(1)))
  t.deepEqual(numbers, [...numbers].sort((a, b) => a - b), 'in order')
  t.is(new Set(numbers).size, numbers.length, 'no duplicate')
  const resumedFrom = numbers.findIndex((v, i) => i > 0 && v !== numbers[i - 1]! + 1)
  const tail = resumedFrom === -1 ? numbers : numbers.slice(resumedFrom)
  t.deepEqual(tail, Array.from({ length: tail.length }, (_, i) => tail[0]! + i), 'no gap after the resume point')
  t.true(resumedFrom === -1 || resumedFrom > 0)
  second.ws.close()
})

test('past its bounds an offline queue drops the oldest messages and the client is told how many', async (t) => {
  const { app, port } = await serve((app) => chat(app, {}, { ttl: 5000, maxMessages: 3 }))
  t.teardown(() => app.close({ timeout: 100 }))
  const url = `ws://127.0.0.1:${port}/chat`
  const first = await open(url, app)
  await drop(app, first.ws)
  for (let i = 0; i < 10; i++) app.publish('room', `m${i}`)
  t.is(app.stats().wsOfflineDropped, 7)
  const second = await open(`${url}?cz_session=${first.hello.session}`)
  t.true(second.hello.recovered)
  t.is(second.hello.dropped, 7)
  t.deepEqual(await second.take(3), ['m7', 'm8', 'm9'])
  second.ws.close()
})

test('the global offline budget bounds every session together', async (t) => {
  const { app, port } = await serve((app) => chat(app, {}, { ttl: 5000, maxBytes: 1 << 20 }), { maxOfflineMemory: 10_000 })
  t.teardown(() => app.close({ timeout: 100 }))
  const url = `ws://127.0.0.1:${port}/chat`
  const clients = await Promise.all([open(url, app, 2), open(url, app, 2)])
  await Promise.all(clients.map((c) => drop(app, c.ws)))
  for (let i = 0; i < 20; i++) app.publish('room', 'x'.repeat(1000))
  t.true(app.stats().wsOfflineBytes <= 10_000, `${app.stats().wsOfflineBytes} bytes held`)
  t.true(app.stats().wsOfflineDropped > 0)
})

test('a clean close ends the session; an expired one fires the expired hook', async (t) => {
  const closes: number[] = []
  const expired: string[] = []
  const { app, port } = await serve((app) => chat(app, { closes, expired }, { ttl: 200 }))
  t.teardown(() => app.close({ timeout: 100 }))
  const url = `ws://127.0.0.1:${port}/chat`

  const clean = await open(url, app)
  const gone = closed(clean.ws)
  clean.ws.close(1000)
  await gone
  await sleep(50)
  t.is(app.sendTo(clean.hello.session, 'x'), 'dropped', 'a 1000 close ends the session')

  const lost = await open(url, app)
  await drop(app, lost.ws)
  t.is(app.sendTo(lost.hello.session, 'kept'), 'sent')
  await until(() => expired.length > 0, 'expired hook', 3000)
  t.deepEqual(expired, [lost.hello.session])
  t.is(app.sendTo(lost.hello.session, 'x'), 'dropped')
  t.is(app.stats().wsResumeExpired, 1)
  t.is(app.stats().wsOfflineBytes, 0)
  const late = await open(`${url}?cz_session=${lost.hello.session}`)
  t.false(late.hello.recovered)
  t.deepEqual(closes.slice(0, 2), [1000, 1006])
  late.ws.close()
})

test('regression: a session resumed after a 1001 close is fully usable (its old close does not carry over)', async (t) => {
  const { app, port } = await serve((app) => chat(app))
  t.teardown(() => app.close({ timeout: 100 }))
  const url = `ws://127.0.0.1:${port}/chat`
  const first = await open(url, app)
  const gone = closed(first.ws)
  first.ws.close(1001, 'tab closed')
  await gone
  await until(() => app.stats().wsActive === 0, 'server side close')
  app.publish('room', 'while away')
  const second = await open(`${url}?cz_session=${first.hello.session}`)
  t.true(second.hello.recovered)
  t.deepEqual(await second.take(1), ['while away'])
  app.publish('room', 'live')
  t.deepEqual(await second.take(1), ['live'])
  second.ws.send('ping')
  t.deepEqual(await second.take(1), ['echo:ping'])
  const end = closed(second.ws)
  second.ws.close(1000)
  t.is((await end).code, 1000)
})

test('app.close() ends waiting sessions and releases their queues', async (t) => {
  const expired: string[] = []
  const { app, port } = await serve((app) => chat(app, { expired }))
  const first = await open(`ws://127.0.0.1:${port}/chat`, app)
  await drop(app, first.ws)
  app.publish('room', 'queued')
  t.true(app.stats().wsOfflineBytes > 0)
  await app.close({ timeout: 100 })
  t.is(app.stats().wsOfflineBytes, 0)
  t.is(app.sendTo(first.hello.session, 'x'), 'dropped')
  t.deepEqual(expired, [])
})

test('sendTo reaches a connected session and answers dropped for an unknown one', async (t) => {
  const { app, port } = await serve((app) => chat(app))
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await open(`ws://127.0.0.1:${port}/chat`, app)
  t.is(app.sendTo(c.hello.session, 'hi'), 'sent')
  t.is(app.sendTo(c.hello.session, Buffer.from([1, 2])), 'sent')
  t.deepEqual(await c.take(2), ['hi', '\x01\x02'])
  t.is(app.sendTo('0'.repeat(32), 'x'), 'dropped')
  c.ws.close()
})

test('routes without resume send no session message and never keep a socket', async (t) => {
  const ready = deferred()
  const { app, port } = await serve((app) => app.ws('/plain', { open: () => ready.resolve(), message: (ws, d) => void ws.send(d) }))
  t.teardown(() => app.close({ timeout: 100 }))
  const c = await connect(`ws://127.0.0.1:${port}/plain`)
  await ready.promise
  const got = next(c, 1)
  c.send('first')
  t.deepEqual(await got, [{ data: 'first', binary: false }])
  await drop(app, c)
  t.is(app.stats().wsOfflineBytes, 0)
})

test('Chromium resumes a session after its tab closes and gets exactly the missed messages', async (t) => {
  const browser = await launchChromium(t)
  if (!browser) return
  const { app, url, port } = await serve((app) => {
    app.get('/', () => new Response('<!doctype html><title>resume</title>', { headers: { 'content-type': 'text/html' } }))
    app.ws('/chat', { resume: { ttl: 10_000 }, compression: true, open: (ws) => void ws.subscribe('room') })
  })
  t.teardown(() => app.close({ timeout: 100 }))
  /** Opens a tab that connects (with `session`, if given) and records every message. */
  const tab = async (session?: string) => {
    const page = await browser.newPage()
    await page.goto(url)
    const target = `ws://127.0.0.1:${port}/chat${session ? `?cz_session=${session}` : ''}`
    await page.evaluate((target) => {
      const w = globalThis as unknown as { log: string[]; extensions: string }
      w.log = []
      const ws = new WebSocket(target)
      ws.onmessage = (e) => {
        w.extensions = ws.extensions
        w.log.push(String(e.data))
      }
    }, target)
    const log = async (n: number) => {
      await until(
        async () => (await page.evaluate(() => (globalThis as unknown as { log: string[] }).log.length)) >= n,
        `${n} browser message(s)`,
        5000,
        20,
      )
      return page.evaluate(() => {
        const w = globalThis as unknown as { log: string[]; extensions: string }
        return { log: w.log, extensions: w.extensions }
      })
    }
    return { page, log }
  }
  const first = await tab()
  const hello = JSON.parse((await first.log(1)).log[0]!) as Hello
  t.false(hello.recovered)
  await until(() => app.subscribers('room') >= 1, 'the subscription')
  app.publish('room', 'before')
  t.deepEqual((await first.log(2)).log.slice(1), ['before'])
  // Closing the tab sends 1001 (going away): the session waits for the client.
  await first.page.close()
  await until(() => app.stats().wsActive === 0, 'server side close')
  for (const m of ['one', 'two', 'three']) t.is(app.publish('room', m), 1)
  const second = await tab(hello.session)
  const seen = await second.log(4)
  const resumed = JSON.parse(seen.log[0]!) as Hello
  t.true(resumed.recovered)
  t.is(resumed.dropped, 0)
  t.deepEqual(seen.log.slice(1), ['one', 'two', 'three'])
  t.regex(seen.extensions, /^permessage-deflate/)
  // The resumed connection stays open and live.
  app.publish('room', 'live')
  t.deepEqual((await second.log(5)).log.slice(4), ['live'])
})
