/** The `Catzilla` app: routes and middleware in JS, served by the Rust core through one dispatcher. */
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { errorStatus, fromNative, HTTPError } from './errors.js'
import { NativeServer } from './native.js'
import type { NativeStats, NativeStream, PartInfo, PartsStart, StreamOptions, WsAccepted } from './native.js'
import { CatzillaRequest } from './request.js'
import { fail } from './reply.js'
import type { ReplyHost } from './reply.js'
import { packHeaders, TEXT, sendText } from './reply.js'
import { compose } from './compose.js'
import { dispatcher } from './dispatch.js'
import { respond } from './response.js'
import type { StreamSink } from './streaming.js'
import type { AppOptions, CloseOptions, ContentCoding, Handler, HandlerResult, ListenOptions, ListenResult, Middleware, Params, RouteOptions, RouteParams, StaticOptions } from './types.js'
import { mountDashboard } from './dashboard.js'
import type { DashboardOptions } from './dashboard.js'
import { authorization, responseBatches } from './observe.js'
import type { LiveStream, MetricsOptions, ResponseHook } from './observe.js'
import { publishTo, SEND_RESULTS, toWire, WebSocket, wsCompression, wsResume } from './websocket.js'
import type { SendResult, WebSocketBehaviour, WebSocketData } from './websocket.js'

/** Counters reported by `app.stats()`. */
export type ServerStats = NativeStats

interface Route {
  method: string
  path: string
  middleware: Middleware[]
  handler: Handler
  run?: Handler
  ws?: WebSocketBehaviour<unknown>
}

/** Middleware for this route, then its handler, whose `req.params` is typed from the pattern. */
type RouteArgs<P extends Params = Params> = [...Middleware[], Handler<P>]

/** Checks route options and maps them to the native shape (times in ms, 0 = no limit). */
function routeLimits(o: RouteOptions) {
  const count = (v: number | undefined, name: string, min = 0) => {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= min)) throw new RangeError(`route ${name} must be an integer ≥ ${min}`)
    return v
  }
  const t = o.timeouts ?? {}
  const ms = (v: number | undefined, name: string) => (v === undefined ? undefined : Math.min(count(v, `timeouts.${name}`)!, 0xffffffff))
  if (o.compress !== undefined && typeof o.compress !== 'boolean') throw new TypeError('route compress must be a boolean')
  return {
    maxBodySize: count(o.maxBodySize, 'maxBodySize'),
    bufferSize: count(o.bufferSize, 'bufferSize', 1),
    compress: o.compress,
    maxStreams: count(o.maxStreams, 'maxStreams', 1),
    bodyTimeout: ms(t.body, 'body'),
    streamIdleTimeout: ms(t.streamIdle, 'streamIdle'),
    streamLifetime: ms(t.streamLifetime, 'streamLifetime'),
  }
}

/** `app.onError` hook: answers a failure like a handler (its return value is the response), or returns `undefined` for the default answer. */
export type ErrorHook = (err: unknown, req: CatzillaRequest) => HandlerResult | Promise<HandlerResult>

/** The content codings the core can produce. */
const CODINGS: readonly ContentCoding[] = ['br', 'zstd', 'gzip', 'deflate']

/** Maps `AppOptions.compression` to the native options. */
function compressionOptions(c: AppOptions['compression']) {
  if (c === undefined || c === false) return { compression: false }
  const o = c === true ? {} : c
  for (const e of o.encodings ?? []) if (!CODINGS.includes(e)) throw new RangeError(`unknown compression encoding ${String(e)} (one of ${CODINGS.join(', ')})`)
  if (o.level !== undefined && !(Number.isInteger(o.level) && o.level >= 0 && o.level <= 19)) throw new RangeError('compression level must be an integer 0–19')
  return { compression: true, compressionThreshold: o.threshold, compressionEncodings: o.encodings, compressionLevel: o.level }
}

/** Checks `AppOptions.redis` and maps it to the native options. */
function redisOptions(r: AppOptions['redis']) {
  if (r === undefined) return {}
  let url: URL
  try {
    url = new URL(r.url)
  } catch {
    throw new TypeError(`redis url must be a redis:// URL, got ${JSON.stringify(r.url)}`)
  }
  if (url.protocol !== 'redis:') throw new TypeError(`redis url must start with redis:// (rediss:// TLS is not supported yet), got ${url.protocol}//`)
  if (r.prefix !== undefined && !/^[\w.:-]{1,64}$/.test(r.prefix)) throw new TypeError('redis prefix must be 1–64 characters of letters, digits, _ . : -')
  if (r.ttl !== undefined && !(Number.isInteger(r.ttl) && r.ttl >= 0 && r.ttl <= 0xffffffff)) throw new RangeError('redis ttl must be a whole number of seconds ≥ 0')
  return { redisUrl: r.url, redisPrefix: r.prefix, redisTtl: r.ttl }
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return v !== null && typeof v === 'object' && typeof (v as PromiseLike<unknown>).then === 'function'
}

/**
 * A Catzilla application.
 *
 * @example
 * const app = new Catzilla()
 * app.get('/hello/:name', (req) => `Hello, ${req.params.name}!`)
 * const { url } = await app.listen({ port: 3000 })
 */
export class Catzilla implements ReplyHost {
  /** @internal */
  readonly native: NativeServer
  /** @internal */
  readonly trustProxy: boolean
  #routes: Route[] = []
  #middleware: Middleware[] = []
  #requests = new Map<number, CatzillaRequest>()
  #sinks = new Map<number, StreamSink>()
  #sockets = new Map<number, WebSocket<unknown>>()
  #offline = new Map<number, WebSocket<unknown>>()
  #onError: (err: unknown, req: CatzillaRequest) => void
  #errorHook: ErrorHook | undefined
  #responseHooks: ResponseHook[] = []
  #state: 'new' | 'listening' | 'closed' = 'new'
  #closing = new AbortController()
  /** Set only while `attached()` constructs a worker thread's app. */
  static #attaching: NativeServer | undefined

  /**
   * @internal A worker thread's app (see `serve`): attached to the main thread's listening server
   * shared under `key`, taking requests once `_join()` is called.
   */
  static _attached(key: number, worker: number, options: Pick<AppOptions, 'trustProxy'>): Catzilla {
    try {
      Catzilla.#attaching = NativeServer.attach(key, worker)
    } catch (err) {
      throw fromNative(err)
    }
    try {
      return new Catzilla(options)
    } finally {
      Catzilla.#attaching = undefined
    }
  }

  constructor(options: AppOptions = {}) {
    const t = options.timeouts ?? {}
    const l = options.limits ?? {}
    if (options.batchScheduling !== undefined && typeof options.batchScheduling !== 'boolean') throw new TypeError('batchScheduling must be a boolean')
    this.native = Catzilla.#attaching ?? new NativeServer({
      bufferSize: options.bufferSize,
      batchScheduling: options.batchScheduling,
      maxStreamMemory: options.maxStreamMemory,
      maxOfflineMemory: options.maxOfflineMemory,
      headersTimeout: t.headers,
      keepAliveTimeout: t.keepAlive,
      bodyTimeout: t.body,
      streamIdleTimeout: t.streamIdle,
      maxConnections: l.maxConnections,
      maxBodySize: l.maxBodySize,
      maxHeaderSize: l.maxHeaderSize,
      maxHeaders: l.maxHeaders,
      maxUrlLength: l.maxUrlLength,
      topicHistory: options.topicHistory,
      ...redisOptions(options.redis),
      ...compressionOptions(options.compression),
    })
    this.trustProxy = options.trustProxy ?? false
    this.#onError =
      options.onError ??
      ((err, req) => {
        console.error(`[catzilla] ${req.method} ${req.path} failed:`, err)
      })
  }

  /** Adds a route for `method` (`'ALL'` for every method). Middleware may precede the handler. */
  route<Path extends string>(method: string, path: Path, ...args: RouteArgs<RouteParams<Path>>): this
  /** Adds a route with its own limits (see {@link RouteOptions}). */
  route<Path extends string>(method: string, path: Path, options: RouteOptions, ...args: RouteArgs<RouteParams<Path>>): this
  route(method: string, path: string, ...args: unknown[]): this {
    if (this.#state !== 'new') throw new Error('routes must be added before listen()')
    const handler = args[args.length - 1] as Handler
    if (typeof handler !== 'function') throw new TypeError('a route needs a handler function')
    const options = typeof args[0] === 'object' && args[0] !== null ? (args[0] as RouteOptions) : undefined
    const middleware = args.slice(options === undefined ? 0 : 1, -1) as Middleware[]
    const id = this.#routes.length
    try {
      this.native.route(method, path, id, options === undefined ? undefined : routeLimits(options))
    } catch (err) {
      throw fromNative(err)
    }
    this.#routes.push({ method, path, middleware, handler })
    return this
  }

  /** `GET` route; `HEAD` is answered by it too, without a body. */
  get<Path extends string>(path: Path, ...args: RouteArgs<RouteParams<Path>>): this
  get<Path extends string>(path: Path, options: RouteOptions, ...args: RouteArgs<RouteParams<Path>>): this
  get(path: string, ...args: unknown[]): this {
    return this.route('GET', path, ...(args as RouteArgs))
  }
  /** `POST` route. */
  post<Path extends string>(path: Path, ...args: RouteArgs<RouteParams<Path>>): this
  post<Path extends string>(path: Path, options: RouteOptions, ...args: RouteArgs<RouteParams<Path>>): this
  post(path: string, ...args: unknown[]): this {
    return this.route('POST', path, ...(args as RouteArgs))
  }
  /** `PUT` route. */
  put<Path extends string>(path: Path, ...args: RouteArgs<RouteParams<Path>>): this
  put<Path extends string>(path: Path, options: RouteOptions, ...args: RouteArgs<RouteParams<Path>>): this
  put(path: string, ...args: unknown[]): this {
    return this.route('PUT', path, ...(args as RouteArgs))
  }
  /** `PATCH` route. */
  patch<Path extends string>(path: Path, ...args: RouteArgs<RouteParams<Path>>): this
  patch<Path extends string>(path: Path, options: RouteOptions, ...args: RouteArgs<RouteParams<Path>>): this
  patch(path: string, ...args: unknown[]): this {
    return this.route('PATCH', path, ...(args as RouteArgs))
  }
  /** `DELETE` route. */
  delete<Path extends string>(path: Path, ...args: RouteArgs<RouteParams<Path>>): this
  delete<Path extends string>(path: Path, options: RouteOptions, ...args: RouteArgs<RouteParams<Path>>): this
  delete(path: string, ...args: unknown[]): this {
    return this.route('DELETE', path, ...(args as RouteArgs))
  }
  /** Explicit `HEAD` route (otherwise `GET` routes answer `HEAD`). */
  head<Path extends string>(path: Path, ...args: RouteArgs<RouteParams<Path>>): this
  head<Path extends string>(path: Path, options: RouteOptions, ...args: RouteArgs<RouteParams<Path>>): this
  head(path: string, ...args: unknown[]): this {
    return this.route('HEAD', path, ...(args as RouteArgs))
  }
  /** `OPTIONS` route. */
  options<Path extends string>(path: Path, ...args: RouteArgs<RouteParams<Path>>): this
  options<Path extends string>(path: Path, options: RouteOptions, ...args: RouteArgs<RouteParams<Path>>): this
  options(path: string, ...args: unknown[]): this {
    return this.route('OPTIONS', path, ...(args as RouteArgs))
  }
  /** A route for every method. */
  all<Path extends string>(path: Path, ...args: RouteArgs<RouteParams<Path>>): this
  all<Path extends string>(path: Path, options: RouteOptions, ...args: RouteArgs<RouteParams<Path>>): this
  all(path: string, ...args: unknown[]): this {
    return this.route('ALL', path, ...(args as RouteArgs))
  }

  /**
   * A WebSocket route. Requests that are not WebSocket upgrades get `426 Upgrade Required`;
   * malformed handshakes get `400`. App middleware does not run for upgrades (use `upgrade`).
   *
   * @example
   * app.ws('/echo', { message: (ws, data) => ws.send(data) })
   */
  ws<T = unknown, Path extends string = string>(path: Path, behaviour: WebSocketBehaviour<T, RouteParams<Path>>): this {
    const id = this.#routes.length
    this.route('GET', path, () => undefined)
    this.#routes[id]!.ws = behaviour as WebSocketBehaviour<unknown>
    const num = (v: number | undefined, name: string) => {
      if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new RangeError(`ws ${name} must be a non-negative number`)
      return v
    }
    this.native.wsRoute(id, {
      maxPayload: num(behaviour.maxPayload, 'maxPayload'),
      idleTimeout: num(behaviour.idleTimeout, 'idleTimeout'),
      maxBackpressure: num(behaviour.maxBackpressure, 'maxBackpressure'),
      closeOnBackpressureLimit: behaviour.closeOnBackpressureLimit,
      compression: wsCompression(behaviour.compression),
      resume: wsResume(behaviour.resume),
    })
    return this
  }

  /**
   * Publishes to every WebSocket and SSE (`sse.topic`) subscriber of `topic`, fanned out in Rust
   * without entering JS per subscriber. Strings go to WebSockets as text frames, bytes as binary,
   * anything else as JSON text; SSE subscribers get one event (`options.event` names its type).
   * Returns how many subscribers it reached. Throws `CZ_SSE_FIELD` (and sends nothing) when
   * `options.event` contains CR, LF or NUL.
   */
  publish(topic: string, data: WebSocketData, options: { event?: string } = {}): number {
    return publishTo(this.native, topic, data, options.event, 0)
  }

  /**
   * Sends to the WebSocket of session `sessionId` (routes with `resume`), whether it is connected
   * or waiting for its client to resume; then it is queued within the route's bounds. Returns
   * `dropped` for an unknown or expired session. With `redis`, a session this process does not
   * hold is looked up in Redis: queued there if it waits there (disconnected sessions of every
   * process do), else published to every process and sent by the one it is connected to. The
   * call then answers `sent` without waiting for Redis; a session unknown everywhere drops it.
   */
  sendTo(sessionId: string, data: WebSocketData): SendResult {
    const wire = toWire(data)
    const r = typeof wire === 'string' ? this.native.sendToSessionText(sessionId, wire) : this.native.sendToSessionBinary(sessionId, wire)
    return SEND_RESULTS[r] ?? 'dropped'
  }

  /** Number of WebSocket and SSE subscribers of `topic` now. */
  subscribers(topic: string): number {
    return this.native.subscribers(topic)
  }

  /**
   * Serves the files under `dir` at `prefix/*` from Rust: requests never enter JS (no
   * middleware), with the same ETag/304/Range handling as `file()`. Paths are percent-decoded;
   * `..`, backslashes, NUL and symlinks leaving `dir` are 404, as are dotfiles unless
   * `dotfiles: true`. A directory serves its `index` file (default `index.html`; `false`: 404).
   *
   * @example
   * app.static('/assets', './public', { maxAge: 3600 })
   */
  static(prefix: string, dir: string, options: StaticOptions = {}): this {
    const base = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
    const maxAge = options.maxAge
    if (maxAge !== undefined && !(Number.isInteger(maxAge) && maxAge >= 0)) throw new RangeError('static maxAge must be a non-negative integer (seconds)')
    if (this.#state !== 'new') throw new Error('static routes must be added before listen()')
    // `prefix/` (the directory's index) and `prefix/*` (everything below it), answered in Rust.
    try {
      this.native.staticDir(base, dir, {
        index: options.index === false ? undefined : (options.index ?? 'index.html'),
        dotfiles: options.dotfiles ?? false,
        cacheControl: options.cacheControl ?? (maxAge === undefined ? undefined : `public, max-age=${maxAge}`),
      })
    } catch (err) {
      throw fromNative(err)
    }
    return this
  }

  /**
   * Answers failures that happen before the first byte: whatever `hook` returns is sent like a
   * handler's return value (a JSON error body, a `json(...)` with a status, a `Response`);
   * `undefined` keeps the default answer (`HTTPError` → its status, an error with a numeric
   * `status`/`statusCode` → that status, anything else → 500). Errors that become 5xx are still
   * reported to the `onError` option first. A hook that throws gets the default answer.
   *
   * @example
   * app.onError((err, req) => json({ error: err instanceof Error ? err.message : 'error', path: req.path }, { status: errorStatus(err) ?? 500 }))
   */
  onError(hook: ErrorHook): this {
    this.#errorHook = hook
    return this
  }

  /**
   * Answers requests no route matches (instead of the core's plain `404 Not Found`), after the
   * app middleware, like a route for every method and path. A path that exists with another
   * method still gets `405`.
   *
   * @example
   * app.notFound((req) => json({ error: 'not found', path: req.path }, { status: 404 }))
   */
  notFound(...args: RouteArgs): this {
    if (this.#state !== 'new') throw new Error('notFound() must be set before listen()')
    const handler = args[args.length - 1] as Handler
    if (typeof handler !== 'function') throw new TypeError('notFound needs a handler function')
    const id = this.#routes.length
    this.native.setNotFound(id)
    this.#routes.push({ method: 'ALL', path: '*', middleware: args.slice(0, -1) as Middleware[], handler })
    return this
  }

  /** @internal Lets the `onError` hook answer a failure; `true` if it took over. */
  answerError(req: CatzillaRequest, err: unknown): boolean {
    const hook = this.#errorHook
    if (hook === undefined || req._errorReported) return false
    req._errorReported = true
    const status = errorStatus(err)
    if (status === undefined || (status >= 500 && !(err instanceof HTTPError))) this.reportError(err, req)
    const fallback = (hookErr?: unknown) => {
      if (hookErr !== undefined) this.reportError(hookErr, req)
      fail(this, req, err)
    }
    let value: unknown
    try {
      value = hook(err, req)
    } catch (hookErr) {
      fallback(hookErr)
      return true
    }
    const settle = (v: unknown) => (v === undefined ? fallback() : respond(this, req, v))
    if (isPromiseLike(value)) value.then(settle, (e: unknown) => fallback(e ?? new Error('onError hook rejected')))
    else settle(value)
    return true
  }

  /**
   * Calls `hook` once for every finished request — responses the core answers itself included
   * (404, 405, 413, 414, 400, 503, static files, metrics scrapes, WebSocket upgrades) — with
   * method, URL, status, bytes, duration, time to first byte and the stream/aborted flags. The core
   * batches them (one crossing per ~5 ms or 1,024 requests, never one per request). Set before
   * `listen()`.
   *
   * @example
   * app.onResponse((r) => logger.info({ method: r.method, url: r.url, status: r.status, ms: r.durationMs }))
   */
  onResponse(hook: ResponseHook): this {
    if (this.#state !== 'new') throw new Error('onResponse() must be set before listen()')
    if (typeof hook !== 'function') throw new TypeError('onResponse needs a function')
    if (this.#responseHooks.length === 0) {
      this.native.onResponses(responseBatches(this.#responseHooks, (err) => {
        this.native.countHandlerError()
        console.error('[catzilla] onResponse hook failed:', err)
      }))
    }
    this.#responseHooks.push(hook)
    return this
  }

  /**
   * Serves Prometheus metrics at `path` (GET), answered in Rust: request counts by method and
   * status class, duration and time-to-first-byte histograms, streams, stream buffer bytes,
   * WebSockets, topics and limit hits (`catzilla_*`). With `auth`, a scrape without that bearer
   * token or Basic user/password gets 401. Set before `listen()`.
   *
   * @example
   * app.metrics('/metrics', { auth: { bearer: process.env.METRICS_TOKEN! } })
   */
  metrics(path: string, options: MetricsOptions = {}): this {
    if (this.#state !== 'new') throw new Error('metrics() must be set before listen()')
    try {
      this.native.metricsRoute(path, authorization(options.auth))
    } catch (err) {
      throw fromNative(err)
    }
    return this
  }

  /**
   * Every live stream and WebSocket now, oldest first: route path, client, age, bytes and chunks
   * sent, bytes buffered, buffer size, and since when the producer waits for a slow client
   * (`stalledSince`). Read from atomics in Rust; listing never waits on a stream.
   *
   * @example
   * app.get('/debug/streams', () => app.streams().filter((s) => s.stalledSince !== undefined))
   */
  streams(): LiveStream[] {
    return this.native.streams()
  }

  /**
   * Cuts live stream `id` from `streams()`: what was written still goes out, then the connection
   * closes and the producer sees the stream closed (its `finally` runs); a WebSocket gets a 1001
   * close. `false` when it is not live (any more).
   */
  closeStream(id: number): boolean {
    return this.native.closeStream(id)
  }

  /**
   * Serves a live debug dashboard at `path`: counters, a throughput chart and the table of
   * `streams()` with a close button per row, one self-contained page updated over SSE by the app
   * itself. Off unless called. Without `auth` only loopback clients may open it (it can close
   * streams); with `{ username, password }` the browser asks for them (HTTP Basic), or pass a
   * function `(req) => boolean`. Set before `listen()`.
   *
   * @example
   * app.dashboard('/_catzilla', { auth: { username: 'ops', password: process.env.DASHBOARD_PASSWORD! } })
   */
  dashboard(path: string, options: DashboardOptions = {}): this {
    if (this.#state !== 'new') throw new Error('dashboard() must be set before listen()')
    mountDashboard(this, path, options)
    return this
  }

  /** The Prometheus (OpenMetrics text) exposition of the app's metrics now, for a route of your own. */
  metricsText(): string {
    return this.native.metricsText()
  }

  /** Adds middleware that wraps every route, in registration order (onion). */
  use(middleware: Middleware): this {
    if (this.#state !== 'new') throw new Error('middleware must be added before listen()')
    this.#middleware.push(middleware)
    return this
  }

  /** Composes every route's middleware and installs the dispatcher (before listen or join). */
  #prepare(): void {
    for (const r of this.#routes) r.run = compose([...this.#middleware, ...r.middleware], r.handler)
    this.native.setDispatcher(
      dispatcher({
        requests: this.#requests,
        sinks: this.#sinks,
        sockets: this.#sockets,
        offline: this.#offline,
        onRequest: (id, routeId, head, body) => this.#onRequest(id, routeId, head, body),
        hook: (ws, name, fn) => this.#hook(ws, name, fn),
      }),
    )
  }

  /** Binds and starts serving. */
  async listen(options: ListenOptions = {}): Promise<ListenResult> {
    if (this.#state !== 'new') throw new Error('listen() was already called')
    const host = options.host ?? '127.0.0.1'
    let info
    try {
      // Names (`localhost`) are resolved here, as Node's `listen` does; the core binds addresses.
      const address = isIP(host) !== 0 ? host : (await lookup(host)).address
      // Only now: a failed lookup leaves no dispatcher (it would keep the process alive) and
      // the thread's scheduling policy untouched (see `batchScheduling`).
      this.#prepare()
      info = await this.native.listen(address, options.port ?? 3000)
    } catch (err) {
      throw fromNative(err)
    }
    this.#state = 'listening'
    const h = info.address.includes(':') ? `[${info.address}]` : info.address
    return { port: info.port, host: info.address, url: `http://${h}:${info.port}` }
  }

  /**
   * @internal On a worker thread's app: starts taking requests from the main thread's server.
   * Throws `CZ_WORKER_ROUTES` when its routes differ from the main thread's.
   */
  _join(): void {
    if (this.#state !== 'new') throw new Error('_join() was already called')
    this.#prepare()
    try {
      this.native.join()
    } catch (err) {
      throw fromNative(err)
    }
    this.#state = 'listening'
  }

  /** @internal On a worker thread's app: the main thread began closing (fires `closing`). */
  _closing(): void {
    this.#closing.abort()
  }

  /** Aborts when `close()` begins (also `req.closing`): streams can say goodbye before the cut. */
  get closing(): AbortSignal {
    return this.#closing.signal
  }

  /**
   * Graceful close: fire `closing` (`req.closing`) so long streams can end cleanly, stop
   * accepting, let in-flight responses finish (up to `timeout` ms), then cut the rest.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    this.#closing.abort()
    await this.native.close(options.timeout ?? 10_000)
  }

  /** Live counters: connections, requests, streams, and every rejection by status. */
  stats(): ServerStats {
    return this.native.stats()
  }

  /** @internal */
  startStream(id: number, status: number, headers: string, options: StreamOptions): NativeStream | null {
    try {
      return this.native.startStream(id, status, headers, options)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** @internal */
  registerSink(id: number, sink: StreamSink): void {
    this.#sinks.set(id, sink)
  }

  /** @internal */
  finish(req: CatzillaRequest): void {
    this.#requests.delete(req._id)
  }

  /** @internal */
  readBody(id: number): void {
    this.native.readBody(id)
  }

  /** @internal */
  multipartStart(id: number): PartsStart {
    return this.native.multipartStart(id)
  }

  /** @internal */
  multipartHead(id: number): PartInfo | null {
    return this.native.multipartHead(id)
  }

  /** @internal */
  multipartNext(id: number): void {
    this.native.multipartNext(id)
  }

  /** @internal */
  multipartRead(id: number): void {
    this.native.multipartRead(id)
  }

  /** @internal */
  reportError(err: unknown, req?: CatzillaRequest): void {
    this.native.countHandlerError()
    if (req === undefined) return
    try {
      this.#onError(err, req)
    } catch {
      /* the error reporter must not break the dispatcher */
    }
  }



  /**
   * Runs a WebSocket hook; a throw (or a rejection) is reported and closes the socket with 1011.
   * Returns a promise that settles when an async hook is done (never rejects), else `undefined`.
   */
  #hook(ws: WebSocket<unknown>, name: string, fn: () => unknown): PromiseLike<unknown> | undefined {
    const onError = (err: unknown) => {
      this.native.countHandlerError()
      console.error(`[catzilla] websocket ${name} hook failed:`, err)
      if (!ws.closed) ws.close(1011, 'internal error')
    }
    try {
      const r = fn()
      if (isPromiseLike(r)) return r.then(undefined, onError)
    } catch (err) {
      onError(err)
    }
    return undefined
  }

  /** Runs the route's `upgrade` hook, then accepts the handshake natively. */
  async #upgrade(req: CatzillaRequest, routeId: number, behaviour: WebSocketBehaviour<unknown>): Promise<void> {
    const upgrade = req.header('upgrade')
    if (req.method !== 'GET' || upgrade === undefined || upgrade.toLowerCase() !== 'websocket') {
      return sendText(this, req, 426, TEXT, 'Upgrade Required')
    }
    let data: unknown
    try {
      data = behaviour.upgrade === undefined ? undefined : await behaviour.upgrade(req)
    } catch (err) {
      return fail(this, req, err)
    }
    const offered = req.header('sec-websocket-protocol')
    if (offered !== undefined && !req._responseHeaders?.some(([k]) => k.toLowerCase() === 'sec-websocket-protocol')) {
      req.setHeader('sec-websocket-protocol', offered.split(',')[0]!.trim())
    }
    let accepted: WsAccepted
    try {
      const session = behaviour.resume ? (req.query.get('cz_session') ?? undefined) : undefined
      // With the Redis adapter a session may wait in Redis, left there by any process: take it
      // first (answered at once when it waits here, or without Redis).
      if (session !== undefined) await this.native.claimWsSession(routeId, session)
      accepted = this.native.acceptWs(req._id, routeId, packHeaders(req, undefined), session)
    } catch (err) {
      return fail(this, req, fromNative(err))
    }
    this.#requests.delete(req._id)
    const wsId = accepted.id
    if (wsId === 0) return req._finished(0, 0, true)
    req._finished(101, 0, false)
    this.#offline.delete(wsId)
    this.#sockets.set(wsId, new WebSocket(this.native, wsId, data, req.params, behaviour, accepted))
  }

  #onRequest(id: number, routeId: number, head: string, body: Buffer | undefined): void {
    const req = new CatzillaRequest(this, id, head, body)
    this.#requests.set(id, req)
    const route = this.#routes[routeId]!
    if (route.ws !== undefined) return void this.#upgrade(req, routeId, route.ws)
    let result: unknown
    try {
      result = route.run!(req)
    } catch (err) {
      return fail(this, req, err)
    }
    if (isPromiseLike(result)) {
      result.then(
        (v) => respond(this, req, v),
        (err) => fail(this, req, err),
      )
    } else {
      respond(this, req, result)
    }
  }
}

