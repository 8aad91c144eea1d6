/** The `Catzilla` app: routes and middleware in JS, served by the Rust core through one dispatcher. */
import { fromNative, HTTPError } from './errors.js'
import { Ev, NativeServer } from './native.js'
import type { NativeStats, NativeStream } from './native.js'
import { CatzillaRequest } from './request.js'
import { fail } from './reply.js'
import type { ReplyHost } from './reply.js'
import { respond } from './response.js'
import type { StreamSink } from './streaming.js'
import type { AppOptions, CloseOptions, Handler, ListenOptions, ListenResult, Middleware } from './types.js'

/** Counters reported by `app.stats()`. */
export type ServerStats = NativeStats

interface Route {
  method: string
  path: string
  middleware: Middleware[]
  handler: Handler
  run?: Handler
}

type RouteArgs = [...Middleware[], Handler]

/** Runs middleware in onion order around `handler`. */
function compose(middleware: Middleware[], handler: Handler): Handler {
  if (middleware.length === 0) return handler
  return (req) => {
    const run = async (i: number): Promise<unknown> => {
      if (i === middleware.length) return handler(req)
      let inner: unknown
      let called = false
      const result = await middleware[i]!(req, async () => {
        if (called) throw new Error('next() called twice')
        called = true
        inner = await run(i + 1)
        return inner
      })
      return result === undefined && called ? inner : result
    }
    return run(0)
  }
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
  #onError: (err: unknown, req: CatzillaRequest) => void
  #state: 'new' | 'listening' | 'closed' = 'new'

  constructor(options: AppOptions = {}) {
    const t = options.timeouts ?? {}
    const l = options.limits ?? {}
    this.native = new NativeServer({
      bufferSize: options.bufferSize,
      maxStreamMemory: options.maxStreamMemory,
      headersTimeout: t.headers,
      keepAliveTimeout: t.keepAlive,
      bodyTimeout: t.body,
      maxConnections: l.maxConnections,
      maxBodySize: l.maxBodySize,
      maxHeaderSize: l.maxHeaderSize,
      maxUrlLength: l.maxUrlLength,
    })
    this.trustProxy = options.trustProxy ?? false
    this.#onError =
      options.onError ??
      ((err, req) => {
        console.error(`[catzilla] ${req.method} ${req.path} failed:`, err)
      })
  }

  /** Adds a route for `method` (`'ALL'` for every method). Middleware may precede the handler. */
  route(method: string, path: string, ...args: RouteArgs): this {
    if (this.#state !== 'new') throw new Error('routes must be added before listen()')
    const handler = args[args.length - 1] as Handler
    if (typeof handler !== 'function') throw new TypeError('a route needs a handler function')
    const middleware = args.slice(0, -1) as Middleware[]
    const id = this.#routes.length
    try {
      this.native.route(method, path, id)
    } catch (err) {
      throw fromNative(err)
    }
    this.#routes.push({ method, path, middleware, handler })
    return this
  }

  /** `GET` route; `HEAD` is answered by it too, without a body. */
  get(path: string, ...args: RouteArgs): this {
    return this.route('GET', path, ...args)
  }
  /** `POST` route. */
  post(path: string, ...args: RouteArgs): this {
    return this.route('POST', path, ...args)
  }
  /** `PUT` route. */
  put(path: string, ...args: RouteArgs): this {
    return this.route('PUT', path, ...args)
  }
  /** `PATCH` route. */
  patch(path: string, ...args: RouteArgs): this {
    return this.route('PATCH', path, ...args)
  }
  /** `DELETE` route. */
  delete(path: string, ...args: RouteArgs): this {
    return this.route('DELETE', path, ...args)
  }
  /** Explicit `HEAD` route (otherwise `GET` routes answer `HEAD`). */
  head(path: string, ...args: RouteArgs): this {
    return this.route('HEAD', path, ...args)
  }
  /** `OPTIONS` route. */
  options(path: string, ...args: RouteArgs): this {
    return this.route('OPTIONS', path, ...args)
  }
  /** A route for every method. */
  all(path: string, ...args: RouteArgs): this {
    return this.route('ALL', path, ...args)
  }

  /** Adds middleware that wraps every route, in registration order (onion). */
  use(middleware: Middleware): this {
    if (this.#state !== 'new') throw new Error('middleware must be added before listen()')
    this.#middleware.push(middleware)
    return this
  }

  /** Binds and starts serving. */
  async listen(options: ListenOptions = {}): Promise<ListenResult> {
    if (this.#state !== 'new') throw new Error('listen() was already called')
    for (const r of this.#routes) r.run = compose([...this.#middleware, ...r.middleware], r.handler)
    this.native.setDispatcher(this.#dispatch)
    const host = options.host ?? '127.0.0.1'
    let info
    try {
      info = await this.native.listen(host, options.port ?? 3000)
    } catch (err) {
      throw fromNative(err)
    }
    this.#state = 'listening'
    const h = info.address.includes(':') ? `[${info.address}]` : info.address
    return { port: info.port, host: info.address, url: `http://${h}:${info.port}` }
  }

  /** Graceful close: stop accepting, let in-flight responses finish (up to `timeout` ms), then cut. */
  async close(options: CloseOptions = {}): Promise<void> {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    await this.native.close(options.timeout ?? 10_000)
  }

  /** Live counters: connections, requests, streams, and every rejection by status. */
  stats(): ServerStats {
    return this.native.stats()
  }

  /** @internal */
  startStream(
    id: number,
    status: number,
    headers: string,
    bufferSize: number,
    heartbeatMs: number,
    heartbeat: string | null,
  ): NativeStream | null {
    try {
      return this.native.startStream(id, status, headers, bufferSize, heartbeatMs, heartbeat)
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
  reportError(err: unknown, req?: CatzillaRequest): void {
    this.native.countHandlerError()
    if (req === undefined) return
    try {
      this.#onError(err, req)
    } catch {
      /* the error reporter must not break the dispatcher */
    }
  }

  #dispatch = (kind: number, id: number, num: number, text?: string | null, data?: Buffer | null): void => {
    switch (kind) {
      case Ev.Request:
        return this.#onRequest(id, num, text!, data ?? undefined)
      case Ev.Drain:
        return this.#sinks.get(id)?._drained()
      case Ev.Closed: {
        const aborted = num === 1
        const sink = this.#sinks.get(id)
        this.#sinks.delete(id)
        const req = this.#requests.get(id)
        this.#requests.delete(id)
        if (aborted) req?._abort()
        return sink?._closed(aborted)
      }
      case Ev.Cancel: {
        const req = this.#requests.get(id)
        this.#requests.delete(id)
        req?._abort()
        return req?._finished(0, 0, true)
      }
      case Ev.Body:
        return this.#requests.get(id)?._bodyEvent(data ?? undefined)
      case Ev.BodyEnd:
        return this.#requests.get(id)?._bodyEvent(undefined)
      case Ev.BodyError: {
        const req = this.#requests.get(id)
        return req?._bodyEvent(undefined, new HTTPError(num, text ?? 'Bad Request'))
      }
    }
  }

  #onRequest(id: number, routeId: number, head: string, body: Buffer | undefined): void {
    const req = new CatzillaRequest(this, id, head, body)
    this.#requests.set(id, req)
    const route = this.#routes[routeId]!
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

