/** The Redis adapter against a real redis-server: topics, history and resumes across two app processes, and Redis going away. */
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import net from 'node:net'
import WebSocket from 'ws'
import { until, within } from './helpers.js'

const FIXTURE = new URL('./fixtures/redis-app.ts', import.meta.url).pathname

function haveRedis(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const HAVE_REDIS = haveRedis()
if (!HAVE_REDIS && process.env.CI) throw new Error('redis-server is not installed (CI installs it with apt; see .ci/run)')
const redisTest = HAVE_REDIS ? test : test.skip

/** A free loopback port. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

/** Sends one command to Redis with the inline protocol and returns the raw reply. */
function redisCommand(port: number, line: string): Promise<string> {
  return within(
    new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1', () => sock.write(`${line}\r\n`))
      let out = ''
      sock.on('data', (d) => {
        out += d
        if (out.endsWith('\r\n')) {
          sock.end()
          resolve(out)
        }
      })
      sock.on('error', reject)
    }),
    3000,
    `redis ${line}`,
  )
}

/** A redis-server on a loopback port, without persistence; stopped at teardown. */
async function startRedis(t: ExecutionContext, port?: number) {
  const p = port ?? (await freePort())
  const proc = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  t.teardown(() => void proc.kill('SIGKILL'))
  await until(async () => (await redisCommand(p, 'PING').catch(() => '')).startsWith('+PONG'), 'redis-server up')
  return { port: p, proc, url: `redis://127.0.0.1:${p}` }
}

/** One app process (fixtures/redis-app.ts) on the Redis at `url`; stopped at teardown. */
async function startApp(t: ExecutionContext, redisUrl: string, env: Record<string, string> = {}) {
  const proc: ChildProcess = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, REDIS_URL: redisUrl, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => void proc.kill('SIGKILL'))
  const url = await within(
    new Promise<string>((resolve, reject) => {
      let buf = ''
      proc.stdout!.on('data', (d) => {
        buf += d
        const m = /ready (\S+)/.exec(buf)
        if (m) resolve(m[1]!)
      })
      proc.once('exit', (c) => reject(new Error(`app exited with ${c}`)))
    }),
    20_000,
    'app process ready',
  )
  const stats = async () => (await (await fetch(`${url}/stats`)).json()) as Record<string, number>
  await until(async () => (await stats()).redisConnected === 1, 'app connected to redis', 10_000)
  return { url, proc, stats }
}

interface SseEvent {
  id?: string
  event?: string
  data: string
}

/** An SSE client that keeps every event; `lastEventId` is sent as `Last-Event-ID`. */
async function sseClient(t: ExecutionContext, url: string, lastEventId?: string) {
  const abort = new AbortController()
  t.teardown(() => abort.abort())
  const res = await fetch(url, { signal: abort.signal, headers: lastEventId ? { 'last-event-id': lastEventId } : {} })
  const events: SseEvent[] = []
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let buf = ''
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) return
        buf += decoder.decode(value, { stream: true })
        let at
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, at)
          buf = buf.slice(at + 2)
          const ev: SseEvent = { data: '' }
          const data: string[] = []
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue
            const [field, ...rest] = line.split(':')
            const value = rest.join(':').replace(/^ /, '')
            if (field === 'id') ev.id = value
            else if (field === 'event') ev.event = value
            else if (field === 'data') data.push(value)
          }
          if (data.length === 0 && ev.event === undefined) continue
          ev.data = data.join('\n')
          events.push(ev)
        }
      }
    } catch {
      /* aborted */
    }
  })()
  return { events, close: () => abort.abort(), messages: () => events.filter((e) => e.event === undefined).map((e) => e.data) }
}

async function publish(app: { url: string }, topic: string, text: string) {
  const r = await fetch(`${app.url}/publish/${topic}`, { method: 'POST', body: text })
  return (await r.json()) as { reached: number }
}

async function subscribed(app: { stats(): Promise<Record<string, number>> }, n: number) {
  await until(async () => (await app.stats()).subscribersActive === n, `${n} subscriber(s)`)
}

redisTest('an SSE client on one process receives what another process publishes, in one order with the same ids', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await Promise.all([startApp(t, redis.url), startApp(t, redis.url)])
  const onA = await sseClient(t, `${a.url}/events/news`)
  const onB = await sseClient(t, `${b.url}/events/news`)
  await subscribed(a, 1)
  await subscribed(b, 1)
  // Both processes publish, interleaved: every subscriber sees one order.
  for (let i = 0; i < 10; i++) await publish(i % 2 ? a : b, 'news', `m${i}`)
  await until(() => onA.messages().length === 10 && onB.messages().length === 10, 'all 20 deliveries')
  t.deepEqual(onA.messages(), Array.from({ length: 10 }, (_, i) => `m${i}`))
  t.deepEqual(onA.events.map((e) => e.id), onB.events.map((e) => e.id), 'the same event ids on both processes')
  const ids = onA.events.map((e) => BigInt(e.id!))
  t.true(ids.every((id, i) => i === 0 || id > ids[i - 1]!), 'ids increase')
  t.true((await b.stats()).redisPublished >= 5)
  t.true((await a.stats()).redisReceived >= 10)
  // The topic's history is a Redis stream that expires a day after its last publish.
  t.regex(await redisCommand(redis.port, 'XLEN cztest:t:news'), /^:10\r\n/)
  const ttl = Number(/^:(\d+)/.exec(await redisCommand(redis.port, 'TTL cztest:t:news'))?.[1])
  t.true(ttl > 86_000 && ttl <= 86_400, `ttl ${ttl}`)
})

redisTest('a WebSocket subscriber on one process receives what another process publishes', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await Promise.all([startApp(t, redis.url), startApp(t, redis.url)])
  const ws = new WebSocket(`${a.url.replace('http', 'ws')}/ws`)
  const got: string[] = []
  ws.on('message', (d) => got.push(String(d)))
  t.teardown(() => ws.terminate())
  await within(new Promise((r) => ws.once('open', r)), 5000, 'ws open')
  ws.send('sub chat')
  await until(() => got.includes('subscribed'), 'subscribed')
  await until(async () => (await publish(b, 'chat', 'probe')).reached >= 0 && got.includes('probe'), 'first message through redis', 5000, 50)
  for (let i = 0; i < 5; i++) await publish(b, 'chat', `hello ${i}`)
  await until(() => got.filter((m) => m.startsWith('hello')).length === 5, 'five messages')
  t.deepEqual(got.filter((m) => m.startsWith('hello')), ['hello 0', 'hello 1', 'hello 2', 'hello 3', 'hello 4'])
})

redisTest('an SSE client that reconnects to the other process with Last-Event-ID gets exactly what it missed', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await Promise.all([startApp(t, redis.url), startApp(t, redis.url)])
  const first = await sseClient(t, `${a.url}/events/feed`)
  await subscribed(a, 1)
  for (let i = 0; i < 5; i++) await publish(b, 'feed', `e${i}`)
  await until(() => first.messages().length === 5, 'first five')
  const last = first.events.at(-1)!.id!
  first.close()
  await subscribed(a, 0)
  for (let i = 5; i < 10; i++) await publish(a, 'feed', `e${i}`)
  const again = await sseClient(t, `${b.url}/events/feed`, last)
  await until(() => again.messages().length >= 5, 'the missed five')
  await publish(a, 'feed', 'e10')
  await until(() => again.messages().length === 6, 'then live')
  t.deepEqual(again.messages(), ['e5', 'e6', 'e7', 'e8', 'e9', 'e10'], 'no gap, no duplicate, then live')
  t.false(again.events.some((e) => e.event === 'cz-gap'))
})

redisTest('a resume past what the stream still holds starts with cz-gap, then what is left', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await Promise.all([startApp(t, redis.url, { TOPIC_HISTORY: '3' }), startApp(t, redis.url, { TOPIC_HISTORY: '3' })])
  const first = await sseClient(t, `${a.url}/events/small`)
  await subscribed(a, 1)
  await publish(a, 'small', 'x0')
  await until(() => first.messages().length === 1, 'first')
  const last = first.events[0]!.id!
  first.close()
  for (let i = 1; i <= 6; i++) await publish(a, 'small', `x${i}`)
  const again = await sseClient(t, `${b.url}/events/small`, last)
  await until(() => again.messages().length === 3, 'what is left')
  t.is(again.events[0]!.event, 'cz-gap')
  t.is(JSON.parse(again.events[0]!.data).lastEventId, last)
  t.deepEqual(again.messages(), ['x4', 'x5', 'x6'])
  t.true((await b.stats()).redisGaps >= 1)
})

redisTest('a lost subscription catches up exactly from the stream: no gap, no duplicate, in order', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await Promise.all([startApp(t, redis.url), startApp(t, redis.url)])
  const client = await sseClient(t, `${a.url}/events/tick`)
  await subscribed(a, 1)
  await publish(b, 'tick', 'warm')
  await until(() => client.messages().length === 1, 'warm-up message')
  // B publishes 60 messages over ~300 ms; meanwhile both subscription connections are killed:
  // A catches up from the stream, and B's publishes of that moment wait for its new connection
  // (regression: they went to B's subscribers only, so A never had them).
  const burst = fetch(`${b.url}/publish-many/tick`, { method: 'POST', body: JSON.stringify({ n: 60, prefix: 't', every: 5 }) })
  await new Promise((r) => setTimeout(r, 50))
  // Every subscription connection goes (each process has one: A's carries the topic).
  t.regex(await redisCommand(redis.port, 'CLIENT KILL TYPE pubsub'), /^:2\r\n/)
  await burst
  await until(() => client.messages().length === 61, 'every message, once', 10_000).catch((e: unknown) => { t.log(client.events); throw e })
  t.deepEqual(client.messages(), ['warm', ...Array.from({ length: 60 }, (_, i) => `t${i}`)])
  t.false(client.events.some((e) => e.event === 'cz-gap'))
  t.true((await a.stats()).redisReconnects >= 1)
})

redisTest('Redis going away crashes neither process; local subscribers keep getting publishes; after it returns publishes flow again and the gap is reported', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await Promise.all([startApp(t, redis.url), startApp(t, redis.url)])
  const client = await sseClient(t, `${a.url}/events/ops`)
  await subscribed(a, 1)
  const ws = new WebSocket(`${a.url.replace('http', 'ws')}/ws-resume`)
  const wsGot: string[] = []
  ws.on('message', (d) => wsGot.push(String(d)))
  t.teardown(() => ws.terminate())
  await within(new Promise((r) => ws.once('open', r)), 5000, 'ws open')
  ws.send('sub ops')
  await until(() => wsGot.includes('subscribed'), 'ws subscribed')
  await publish(b, 'ops', 'before')
  await until(() => client.messages().length === 1 && wsGot.includes('before'), 'before the outage')
  redis.proc.kill('SIGKILL')
  await until(async () => (await a.stats()).redisConnected === 0 && (await b.stats()).redisConnected === 0, 'both see Redis gone')
  // A's own subscribers still get A's publishes (without an event id: not resumable).
  t.is((await publish(a, 'ops', 'during')).reached, 2, 'the SSE client and the WebSocket')
  await until(() => client.messages().length === 2 && wsGot.includes('during'), 'local delivery during the outage')
  t.is(client.events.at(-1)!.id, undefined)
  t.true((await a.stats()).redisLocalOnly >= 1)
  // Redis returns, empty (no persistence): the processes reconnect by themselves.
  await startRedis(t, redis.port)
  await until(async () => (await a.stats()).redisConnected === 1 && (await b.stats()).redisConnected === 1, 'both reconnected', 15_000)
  await until(() => client.events.some((e) => e.event === 'cz-gap'), 'the gap reported to the subscriber')
  await until(() => wsGot.some((m) => m.includes('"type":"cz-gap"')), 'and to the WebSocket on a resume route')
  const gap = JSON.parse(wsGot.find((m) => m.includes('"type":"cz-gap"'))!) as { topic: string; lastEventId: string }
  t.is(gap.topic, 'ops')
  t.is(gap.lastEventId, client.events[0]!.id!)
  await publish(b, 'ops', 'after')
  await until(() => client.messages().includes('after'), 'publishes flow again')
  t.deepEqual(client.messages(), ['before', 'during', 'after'])
  // regression: a stream recreated after Redis lost it is not taken for the old one: a resume
  // from an id of before the outage gets cz-gap, then what the new stream has.
  const late = await sseClient(t, `${b.url}/events/ops`, client.events[0]!.id)
  await until(() => late.messages().length === 1, 'the new stream replayed')
  t.is(late.events[0]!.event, 'cz-gap')
  t.deepEqual(late.messages(), ['after'])
  t.true((await a.stats()).redisReconnects >= 1)
  t.true((await a.stats()).redisGaps >= 1)
  t.is(a.proc.exitCode, null)
  t.is(b.proc.exitCode, null)
})

/** A WebSocket client that keeps every message; resolves once open. */
async function wsClient(t: ExecutionContext, url: string) {
  const ws = new WebSocket(url)
  const got: string[] = []
  ws.on('message', (d) => got.push(String(d)))
  t.teardown(() => ws.terminate())
  await within(new Promise((r, j) => ws.once('open', r).once('error', j)), 5000, 'ws open')
  await until(() => got.length > 0, 'cz-session greeting')
  const hello = JSON.parse(got[0]!) as { type: string; session: string; recovered: boolean; dropped: number }
  return { ws, got, hello, messages: () => got.slice(1).filter((m) => !m.startsWith('{') && m !== 'subscribed' && m !== 'probe') }
}

/** `n` for a Redis integer reply. */
async function redisInt(port: number, line: string) {
  return Number(/^:(-?\d+)/.exec(await redisCommand(port, line))?.[1])
}

redisTest('a WebSocket session that disconnects from one process resumes on another with exactly what it missed, then live', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await Promise.all([startApp(t, redis.url), startApp(t, redis.url)])
  const wsUrl = (app: { url: string }) => `${app.url.replace('http', 'ws')}/ws-resume`
  const first = await wsClient(t, wsUrl(a))
  t.false(first.hello.recovered)
  const session = first.hello.session
  first.ws.send('sub room')
  await until(() => first.got.includes('subscribed'), 'subscribed on A')
  await until(async () => (await publish(b, 'room', 'probe')).reached >= 0 && first.got.includes('probe'), 'a publish of B reaches A', 5000, 50)
  for (let i = 0; i < 3; i++) await publish(b, 'room', `a${i}`)
  await until(() => first.messages().length === 3, 'the first messages')
  // The connection dies without a close frame: the session goes to Redis.
  first.ws.terminate()
  await until(async () => (await redisInt(redis.port, `EXISTS cztest:s:${session}`)) === 1, 'the session waits in Redis')
  // Missed while disconnected: topic messages from either process, and a sendTo from B.
  const stored = await redisInt(redis.port, 'XLEN cztest:t:room')
  for (let i = 0; i < 5; i++) await publish(i % 2 ? a : b, 'room', `b${i}`)
  await until(async () => (await redisInt(redis.port, 'XLEN cztest:t:room')) === stored + 5, 'the missed publishes stored')
  t.like(await (await fetch(`${b.url}/send-to/${session}`, { method: 'POST', body: 'direct' })).json(), { result: 'sent' })
  await until(async () => (await redisInt(redis.port, `XLEN cztest:q:${session}`)) === 1, 'sendTo queued in Redis')
  // A publishes a burst while the client resumes on B: the replay and live messages meet there.
  const burst = fetch(`${a.url}/publish-many/room`, { method: 'POST', body: JSON.stringify({ n: 40, prefix: 'c', every: 3 }) })
  await new Promise((r) => setTimeout(r, 20))
  const again = await wsClient(t, `${wsUrl(b)}?cz_session=${session}`)
  t.true(again.hello.recovered, 'resumed on the other process')
  t.is(again.hello.dropped, 0)
  t.not(again.hello.session, session, 'under a new id')
  await burst
  await until(() => again.messages().includes('c39'), 'the whole burst', 10_000)
  await new Promise((r) => setTimeout(r, 200)) // a late duplicate would show now
  const want = [...['b0', 'b1', 'b2', 'b3', 'b4', 'direct'], ...Array.from({ length: 40 }, (_, i) => `c${i}`)]
  t.deepEqual(again.messages(), want, 'what it missed, once each, in order, then live')
  t.false(again.got.some((m) => m.includes('cz-gap')))
  t.is(await redisInt(redis.port, `EXISTS cztest:s:${session}`), 0, 'claimed: gone from Redis')
  t.is((await b.stats()).wsResumed, 1)
  t.is((await b.stats()).redisSessionsClaimed, 1)
  t.is((await a.stats()).redisSessionsStored, 1)
  // A session is resumed once: the old id now opens a new session.
  const twice = await wsClient(t, `${wsUrl(a)}?cz_session=${session}`)
  t.false(twice.hello.recovered)
  // The restored socket disconnects in turn and resumes back on A: only what it missed the
  // second time.
  again.ws.terminate()
  await until(async () => (await redisInt(redis.port, `EXISTS cztest:s:${again.hello.session}`)) === 1, 'in Redis again')
  await publish(b, 'room', 'd0')
  const third = await wsClient(t, `${wsUrl(a)}?cz_session=${again.hello.session}`)
  t.true(third.hello.recovered)
  await until(() => third.messages().length >= 1, 'the one missed message')
  await publish(a, 'room', 'd1')
  await until(() => third.messages().includes('d1'), 'then live')
  await new Promise((r) => setTimeout(r, 200))
  t.deepEqual(third.messages(), ['d0', 'd1'])
  t.is((await a.stats()).redisSessionsClaimed, 1)
})

redisTest('a session left in Redis expires once, on the process it left; one resumed elsewhere does not', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await Promise.all([startApp(t, redis.url), startApp(t, redis.url)])
  const url = (app: { url: string }, s = '') => `${app.url.replace('http', 'ws')}/ws-short${s}`
  const expiredOn = async (app: { url: string }) => ((await (await fetch(`${app.url}/expired`)).json()) as { expired: number }).expired
  // Two sessions leave A; one resumes on B within the 1.5 s TTL.
  const gone = await wsClient(t, url(a))
  const back = await wsClient(t, url(a))
  gone.ws.terminate()
  back.ws.terminate()
  await until(async () => (await redisInt(redis.port, `EXISTS cztest:s:${back.hello.session}`)) === 1, 'in Redis')
  await until(async () => (await redisInt(redis.port, `EXISTS cztest:s:${gone.hello.session}`)) === 1, 'both')
  t.like(await (await fetch(`${a.url}/send-to/${gone.hello.session}`, { method: 'POST', body: 'x' })).json(), { result: 'sent' })
  await until(async () => (await redisInt(redis.port, `XLEN cztest:q:${gone.hello.session}`)) === 1, 'queued in Redis')
  const resumed = await wsClient(t, url(b, `?cz_session=${back.hello.session}`))
  t.true(resumed.hello.recovered)
  await until(async () => (await a.stats()).wsResumeExpired === 1, 'the TTL passed on A', 15_000)
  await new Promise((r) => setTimeout(r, 300))
  t.is(await expiredOn(a), 1, 'expired fired once, for the session nobody resumed')
  t.is(await expiredOn(b), 0)
  t.is(await redisInt(redis.port, `EXISTS cztest:s:${gone.hello.session}`), 0, 'and it left Redis')
  t.is(await redisInt(redis.port, `EXISTS cztest:q:${gone.hello.session}`), 0)
  // An expired session cannot be resumed.
  const late = await wsClient(t, url(b, `?cz_session=${gone.hello.session}`))
  t.false(late.hello.recovered)
})

redisTest('a session whose write to Redis fails waits in its process instead, and tells the client its topics may have a gap', async (t) => {
  const redis = await startRedis(t)
  const a = await startApp(t, redis.url)
  const first = await wsClient(t, `${a.url.replace('http', 'ws')}/ws-resume`)
  first.ws.send('sub room')
  await until(() => first.got.includes('subscribed'), 'subscribed')
  // Redis stops taking writes (scripts included) for longer than the adapter waits for a reply.
  t.regex(await redisCommand(redis.port, 'CLIENT PAUSE 6500 WRITE'), /^\+OK/)
  const before = (await a.stats()).redisErrors
  first.ws.terminate()
  await until(async () => (await a.stats()).redisErrors > before, 'the export timed out', 10_000)
  await until(async () => (await a.stats()).redisConnected === 1, 'the adapter is back', 15_000)
  t.is(await redisInt(redis.port, `EXISTS cztest:s:${first.hello.session}`), 0, 'not in Redis')
  t.is((await a.stats()).redisSessionsStored, 0)
  const again = await wsClient(t, `${a.url.replace('http', 'ws')}/ws-resume?cz_session=${first.hello.session}`)
  t.true(again.hello.recovered, 'resumed where it waited')
  await until(() => again.got.length >= 2, 'the gap')
  t.like(JSON.parse(again.got[1]!), { type: 'cz-gap', topic: 'room' })
  await publish(a, 'room', 'after')
  await until(() => again.messages().includes('after'), 'its topic flows again')
})

redisTest('sendTo reaches a session waiting in Redis, bounded like a local queue (the client is told what was dropped), and one connected to another process', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await Promise.all([startApp(t, redis.url), startApp(t, redis.url)])
  const url = (app: { url: string }, s = '') => `${app.url.replace('http', 'ws')}/ws-resume${s}`
  const first = await wsClient(t, url(a))
  first.ws.terminate()
  await until(async () => (await redisInt(redis.port, `EXISTS cztest:s:${first.hello.session}`)) === 1, 'in Redis')
  // The route keeps 1,000 messages at most (the default): 1,005 sends drop the oldest five.
  for (let i = 0; i < 1005; i += 201) {
    await Promise.all(Array.from({ length: Math.min(201, 1005 - i) }, (_, k) => fetch(`${b.url}/send-to/${first.hello.session}`, { method: 'POST', body: `q${i + k}` })))
  }
  // (HINCRBY by 0 reads the count as an integer reply.)
  await until(async () => (await redisInt(redis.port, `HINCRBY cztest:s:${first.hello.session} d 0`)) === 5, 'five dropped')
  t.is(await redisInt(redis.port, `XLEN cztest:q:${first.hello.session}`), 1000)
  const again = await wsClient(t, url(b, `?cz_session=${first.hello.session}`))
  t.true(again.hello.recovered)
  t.is(again.hello.dropped, 5)
  await until(() => again.messages().length === 1000, 'the thousand kept')
  // Connected to B now: a sendTo on A reaches it through the sessions channel, in order.
  for (let i = 0; i < 3; i++) {
    t.like(await (await fetch(`${a.url}/send-to/${again.hello.session}`, { method: 'POST', body: `live ${i}` })).json(), { result: 'sent' })
  }
  await until(() => again.messages().length === 1003, 'sendTo from the other process')
  t.deepEqual(again.messages().slice(1000), ['live 0', 'live 1', 'live 2'])
})

test('a redis option that is not a redis:// URL is refused when the app is created', async (t) => {
  const { Catzilla } = await import('../index.js')
  t.throws(() => new Catzilla({ redis: { url: 'http://localhost:6379' } }), { instanceOf: TypeError, message: /redis:\/\// })
  t.throws(() => new Catzilla({ redis: { url: 'not a url' } }), { instanceOf: TypeError })
  t.throws(() => new Catzilla({ redis: { url: 'redis://localhost', prefix: 'bad prefix' } }), { instanceOf: TypeError })
})
