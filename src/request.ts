/** The request object handlers receive: head parsed lazily, body streamed from Rust on demand. */
import { CatzillaError, HTTPError } from './errors.js'
import { iterateParts, MultipartReader, notMultipart } from './multipart.js'
import { PartsStart } from './native.js'
import type { Part, PartsHost } from './multipart.js'
import { parse as parseCookie, serialize as serializeCookie } from 'cookie'
import type { SerializeOptions } from 'cookie'

/** Attributes of `req.setCookie` (RFC 6265), as the `cookie` package takes them. */
export type CookieOptions = SerializeOptions

/** What a request needs from its app: body reads through the native server. */
export interface RequestHost extends PartsHost {
  readBody(id: number): void
  trustProxy: boolean
  /** Aborts when the app starts closing. */
  readonly closing: AbortSignal
}

/** How a response ended, passed to `req.onFinish` listeners. */
export interface FinishInfo {
  /** Status sent; `0` when the client left before any response. */
  status: number
  /** Body bytes handed to the socket (for streams: as counted by the ring). */
  bytes: number
  /** Chunks written (1 for a whole body). */
  chunks: number
  /** Milliseconds from the request's arrival in JS to the end of its response. */
  duration: number
  /** `true` when the client left (or the server cut the connection) before the end. */
  aborted: boolean
}

type BodyWaiter = { resolve: (v: IteratorResult<Uint8Array>) => void; reject: (e: unknown) => void }

const EMPTY = new Uint8Array(0)

/**
 * An incoming HTTP request.
 *
 * @example
 * app.post('/users/:id', async (req) => ({ id: req.params.id, body: await req.json() }))
 */
export class CatzillaRequest<P extends Readonly<Record<string, string>> = Readonly<Record<string, string>>> {
  /** Request method, upper-case. */
  readonly method: string
  /** Request target as sent: path and query. */
  readonly url: string
  /** Path parameters from the route (`:name`, and `*` for a trailing wildcard), percent-decoded. */
  readonly params: P
  /** HTTP version, `'1.1'` or `'1.0'`. */
  readonly httpVersion: string

  /** @internal */ readonly _id: number
  #host: RequestHost
  #head: string
  #headerStart: number
  #peer: string
  #headers: Record<string, string> | undefined
  #query: URLSearchParams | undefined
  #controller: AbortController | undefined
  #aborted = false
  #prebuffered: Uint8Array | undefined
  #bodyUsed = false
  #bodyDone = false
  #bodyError: unknown
  #bodyQueue: Uint8Array[] = []
  #bodyWaiter: BodyWaiter | undefined
  #start = performance.now()
  #finish: Array<(info: FinishInfo) => void> | undefined
  #cookies: Record<string, string | undefined> | undefined
  /** @internal The app's `onError` hook already saw (and reported) this request's error. */
  _errorReported = false
  /** @internal Headers added with `setHeader`, sent with whatever response follows. */
  _responseHeaders: Array<[string, string]> | undefined

  /** @internal */
  constructor(host: RequestHost, id: number, packedHead: string, body: Uint8Array | undefined) {
    this.#host = host
    this._id = id
    // `method\0target\0ip\0version\0nparams(\0k\0v)*(\0name\0value)*`: read the fixed fields
    // now, headers only when asked for.
    const h = packedHead
    const a = h.indexOf('\0')
    const b = h.indexOf('\0', a + 1)
    const c = h.indexOf('\0', b + 1)
    const d = h.indexOf('\0', c + 1)
    let e = h.indexOf('\0', d + 1)
    this.method = h.slice(0, a)
    this.url = h.slice(a + 1, b)
    this.#peer = h.slice(b + 1, c)
    this.httpVersion = h.slice(c + 1, d)
    const n = Number(e === -1 ? h.slice(d + 1) : h.slice(d + 1, e))
    const params: Record<string, string> = {}
    for (let i = 0; i < n; i++) {
      const k = h.indexOf('\0', e + 1)
      let v = h.indexOf('\0', k + 1)
      if (v === -1) v = h.length
      const value = h.slice(k + 1, v)
      params[h.slice(e + 1, k)] = value.includes('%') ? safeDecode(value) : value
      e = v
    }
    this.params = params as unknown as P
    this.#head = h
    this.#headerStart = e === -1 ? h.length : e + 1
    this.#prebuffered = body
  }

  /**
   * Sets a response header, sent with whatever this request is answered with (plain body,
   * stream or error), replacing earlier values of the same name (Node's `setHeader`). Middleware
   * can call it before or after `next()`, until the first byte.
   */
  setHeader(name: string, value: string): this {
    const lower = name.toLowerCase()
    const list = (this._responseHeaders ?? []).filter(([k]) => k.toLowerCase() !== lower)
    list.push([name, value])
    this._responseHeaders = list
    return this
  }

  /** Adds a response header value, keeping earlier ones of the same name (for multi-value headers). */
  appendHeader(name: string, value: string): this {
    ;(this._responseHeaders ??= []).push([name, value])
    return this
  }

  /** Request cookies by name, parsed on first use (the `cookie` package); an empty object without a `Cookie` header. */
  get cookies(): Record<string, string | undefined> {
    return (this.#cookies ??= parseCookie(this.header('cookie') ?? ''))
  }

  /**
   * Sets a cookie on the response (`Set-Cookie`, appended, so several cookies can be set), with
   * the RFC 6265 attributes: `maxAge`, `expires`, `domain`, `path`, `secure`, `httpOnly`,
   * `sameSite`, `partitioned`, `priority`. Serialized by the `cookie` package, which refuses
   * invalid names and values.
   *
   * @example
   * req.setCookie('session', token, { httpOnly: true, secure: true, sameSite: 'lax', path: '/', maxAge: 86_400 })
   */
  setCookie(name: string, value: string, options?: CookieOptions): this {
    return this.appendHeader('set-cookie', serializeCookie(name, value, options))
  }

  /**
   * Runs `listener` once the response is over: after a whole body is handed to the socket, or
   * when a stream ends (its last chunk sent) or is cut. Reports status, bytes, chunks, duration.
   */
  onFinish(listener: (info: FinishInfo) => void): this {
    ;(this.#finish ??= []).push(listener)
    return this
  }

  /** @internal The response is over. */
  _finished(status: number, bytes: number, aborted: boolean, chunks = 1): void {
    const listeners = this.#finish
    if (listeners === undefined) return
    this.#finish = undefined
    const info: FinishInfo = { status, bytes, chunks, duration: performance.now() - this.#start, aborted }
    for (const l of listeners) {
      try {
        l(info)
      } catch {
        /* a failing listener must not break the response path */
      }
    }
  }

  /** The path without the query string. */
  get path(): string {
    const q = this.url.indexOf('?')
    return q === -1 ? this.url : this.url.slice(0, q)
  }

  /** The query string, parsed. */
  get query(): URLSearchParams {
    if (this.#query === undefined) {
      const q = this.url.indexOf('?')
      this.#query = new URLSearchParams(q === -1 ? '' : this.url.slice(q + 1))
    }
    return this.#query
  }

  /** Request headers with lower-case names; repeated headers are joined with `, `. */
  get headers(): Readonly<Record<string, string>> {
    if (this.#headers === undefined) {
      const h: Record<string, string> = Object.create(null)
      const head = this.#headerStart < this.#head.length ? this.#head.slice(this.#headerStart).split('\0') : []
      for (let i = 0; i + 1 < head.length; i += 2) {
        const name = head[i]!
        const prev = h[name]
        h[name] = prev === undefined ? head[i + 1]! : `${prev}, ${head[i + 1]!}`
      }
      this.#headers = h
    }
    return this.#headers
  }

  /** One header by case-insensitive name. */
  header(name: string): string | undefined {
    return this.headers[name.toLowerCase()]
  }

  /** The client's IP address (the first `X-Forwarded-For` hop when `trustProxy` is on). */
  get ip(): string {
    if (this.#host.trustProxy) {
      const fwd = this.headers['x-forwarded-for']
      if (fwd) return fwd.split(',')[0]!.trim()
    }
    return this.#peer
  }

  /** `Last-Event-ID` sent by a reconnecting EventSource, if any. */
  get lastEventId(): string | undefined {
    return this.headers['last-event-id']
  }

  /** Aborts when the client goes away before the response is complete. */
  /**
   * Aborts when `app.close()` begins, before anything is cut: a long stream (SSE) can send a last
   * event and end cleanly, so clients reconnect elsewhere instead of seeing a cut connection.
   *
   * @example
   * app.get('/events', (req) => sse(async function* () {
   *   while (!req.closing.aborted) yield await nextEvent(req.closing)
   *   yield { event: 'bye', data: 'server restarting' }
   * }()))
   */
  get closing(): AbortSignal {
    return this.#host.closing
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#aborted) this.#controller.abort(new CatzillaError('CZ_STREAM_CLOSED', 'client disconnected'))
    }
    return this.#controller.signal
  }

  /** `true` once the client went away. */
  get aborted(): boolean {
    return this.#aborted
  }

  /** @internal The client left: fire `signal`, fail pending body reads. */
  _abort(): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#controller?.abort(new CatzillaError('CZ_STREAM_CLOSED', 'client disconnected'))
    this._bodyEvent(undefined, new CatzillaError('CZ_BODY', 'client disconnected'))
  }

  /** @internal The multipart reader, once `parts()` started. */
  _parts: MultipartReader | undefined

  /**
   * The parts of a `multipart/form-data` body, one at a time, parsed in Rust as they arrive
   * (an upload is never buffered whole). Read a part's body before moving on; parts you skip
   * are drained. A malformed body answers 400, more than 1000 parts 413, another content type
   * 415.
   *
   * @example
   * for await (const part of req.parts()) {
   *   if (part.filename) await pipeline(Readable.from(part.body), createWriteStream(dest(part.filename)))
   *   else fields[part.name] = await part.text()
   * }
   */
  parts(): AsyncIterable<Part> {
    if (this.#bodyUsed) throw new CatzillaError('CZ_BODY_USED', 'the request body was already read')
    // Rust reads the boundary from the request it holds and parses the body it holds (streamed
    // or prebuffered): nothing crosses back but the request id.
    const started = this.#host.multipartStart(this._id)
    if (started === PartsStart.NotMultipart) throw notMultipart()
    this.#bodyUsed = true
    this.#prebuffered = undefined
    if (started !== PartsStart.Started) throw new CatzillaError('CZ_BODY', 'the client is gone')
    const reader = new MultipartReader(this.#host, this._id)
    this._parts = reader
    return iterateParts(reader)
  }

  /** The body as a stream of chunks, pulled from Rust one chunk at a time (backpressure). */
  get body(): AsyncIterable<Uint8Array> {
    return { [Symbol.asyncIterator]: () => this.#iterator() }
  }

  /** The whole body as bytes (bounded by `limits.maxBodySize`). */
  async bytes(): Promise<Uint8Array> {
    const pre = this.#takePrebuffered()
    if (pre) return pre
    const parts: Uint8Array[] = []
    let total = 0
    for await (const c of this.body) {
      parts.push(c)
      total += c.byteLength
    }
    if (parts.length === 1) return parts[0]!
    const out = new Uint8Array(total)
    let off = 0
    for (const p of parts) {
      out.set(p, off)
      off += p.byteLength
    }
    return out
  }

  /** The whole body decoded as UTF-8. */
  async text(): Promise<string> {
    const b = await this.bytes()
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8')
  }

  /** The whole body parsed as JSON; invalid JSON answers 400. */
  async json<T = unknown>(): Promise<T> {
    const text = await this.text()
    try {
      return JSON.parse(text) as T
    } catch (err) {
      throw new HTTPError(400, 'Invalid JSON body', { cause: err })
    }
  }

  #takePrebuffered(): Uint8Array | undefined {
    if (this.#bodyUsed) throw new CatzillaError('CZ_BODY_USED', 'the request body was already read')
    const pre = this.#prebuffered
    if (pre !== undefined || !this.#mayHaveBody()) {
      this.#bodyUsed = true
      this.#prebuffered = undefined
      return pre ?? EMPTY
    }
    return undefined
  }

  #mayHaveBody(): boolean {
    const h = this.headers
    return (h['content-length'] !== undefined && h['content-length'] !== '0') || h['transfer-encoding'] !== undefined
  }

  #iterator(): AsyncIterator<Uint8Array> {
    const pre = this.#takePrebuffered()
    if (pre !== undefined) {
      let done = pre.byteLength === 0
      return {
        next: async () => {
          if (done) return { done: true, value: undefined }
          done = true
          return { done: false, value: pre }
        },
      }
    }
    this.#bodyUsed = true
    return {
      next: () => this.#nextChunk(),
      return: async () => {
        this.#bodyDone = true
        return { done: true, value: undefined }
      },
    }
  }

  #nextChunk(): Promise<IteratorResult<Uint8Array>> {
    const queued = this.#bodyQueue.shift()
    if (queued) return Promise.resolve({ done: false, value: queued })
    if (this.#bodyError !== undefined) return Promise.reject(this.#bodyError)
    if (this.#bodyDone) return Promise.resolve({ done: true, value: undefined })
    return new Promise((resolve, reject) => {
      this.#bodyWaiter = { resolve, reject }
      this.#host.readBody(this._id)
    })
  }

  /** @internal A body event from Rust: a chunk, the end (`chunk` undefined), or an error. */
  _bodyEvent(chunk: Uint8Array | undefined, error?: unknown): void {
    if (this._parts !== undefined) return this._parts._event(chunk ?? null, error)
    const w = this.#bodyWaiter
    this.#bodyWaiter = undefined
    if (error !== undefined) {
      if (this.#bodyDone) return
      this.#bodyError = error
      w?.reject(error)
    } else if (chunk === undefined) {
      this.#bodyDone = true
      w?.resolve({ done: true, value: undefined })
    } else if (w) {
      w.resolve({ done: false, value: chunk })
    } else {
      this.#bodyQueue.push(chunk)
    }
  }
}

function safeDecode(v: string): string {
  try {
    return decodeURIComponent(v)
  } catch {
    return v
  }
}
