/** Public option and callback types of the Catzilla API. */
import type { CatzillaRequest } from './request.js'

/** What a handler may return; see the return-value table in the README. */
export type HandlerResult = unknown

/** Parameters of `req.params`: any name, for a pattern only known at run time. */
export type Params = Readonly<Record<string, string>>

type SegmentParam<S extends string> = S extends `:${infer N}` ? N : S extends `*${infer N}` ? (N extends '' ? '*' : N) : never

/** The parameter names of a route pattern: each `:name` segment, and a trailing `*` (named `'*'`) or `*name`. */
export type ParamNames<P extends string> = P extends `${infer Head}/${infer Tail}` ? SegmentParam<Head> | ParamNames<Tail> : SegmentParam<P>

/**
 * `req.params` of the route `P`: one `string` per parameter of the pattern, so a name the pattern
 * does not have is a type error (`'/users/:id'` → `{ id: string }`, `'/files/*'` → `{ '*': string }`).
 */
export type RouteParams<P extends string> = string extends P ? Params : { readonly [K in ParamNames<P>]: string }

/** A route handler; `P` types `req.params` (inferred from the route pattern). */
export type Handler<P extends Params = Params> = (req: CatzillaRequest<P>) => HandlerResult | Promise<HandlerResult>

/** Calls the rest of the chain; resolves to the value the handler (or inner middleware) returned. */
export type Next = () => Promise<unknown>

/** Middleware, in onion order: code before `await next()` runs on the way in, code after on the way out. */
export type Middleware = (req: CatzillaRequest, next: Next) => unknown

/** Timeouts in milliseconds; `0` disables one. */
export interface TimeoutOptions {
  /** Time to receive a complete request head. Default 10 000: stops slowloris without hurting slow mobile links. */
  headers?: number
  /** Idle time between requests on a kept-alive connection. Default 5 000, as Node's `keepAliveTimeout`. */
  keepAlive?: number
  /** Time allowed between two chunks of a request body. Default 30 000. */
  body?: number
  /**
   * Time a response may stay blocked because the client stopped reading; past it the connection
   * is cut, the stream's generator gets `return()` and `req.signal` fires. Quiet streams (an SSE
   * stream waiting for events) are not affected: only data the client does not take counts.
   * Default 60 000, as nginx's `send_timeout`.
   */
  streamIdle?: number
}

/**
 * Settings of one route that replace the app's for its requests:
 * `app.post('/upload', { maxBodySize: 1 << 30, timeouts: { body: 120_000 } }, handler)`.
 */
export interface RouteOptions {
  /** Request body bytes at most (413 beyond). Default: the app's `limits.maxBodySize`. */
  maxBodySize?: number
  /** Ring size of this route's streams in bytes. Default: the app's `bufferSize`. */
  bufferSize?: number
  /** Compress this route's responses (`false`: never; `true`: even when the app's `compression` is off). Default: the app setting. */
  compress?: boolean
  /** Responses of this route in progress at most — for an SSE or streaming route, its open streams. A request beyond gets `503` with `Retry-After: 1` before its handler runs. Default: no limit. */
  maxStreams?: number
  /** Times in ms; 0 disables one. */
  timeouts?: {
    /** Between two request body chunks (408 beyond). Default: the app's `timeouts.body`. */
    body?: number
    /** A write blocked by a client that does not read (the connection is cut beyond). Default: the app's `timeouts.streamIdle`. */
    streamIdle?: number
    /** Total life of a streamed response: the stream is cut beyond (its producer sees the close). Default: unlimited. */
    streamLifetime?: number
  }
}

/** Limits that protect the server; exceeding one answers with a real status. */
export interface LimitOptions {
  /** Open connections at most (503 beyond). Default 10 000. */
  maxConnections?: number
  /** Request body bytes at most (413 beyond). Default 1 MiB. */
  maxBodySize?: number
  /** Request head bytes at most (431 beyond). Default 16 KiB, as Node. */
  maxHeaderSize?: number
  /**
   * Request header fields at most (431 beyond). Default 100 (hyper's default, Node's is 2000):
   * real clients send 10–30. Any other value costs a heap allocation per request (~5 % on
   * tiny requests), so raise it only when a client needs it.
   */
  maxHeaders?: number
  /** Request-target bytes at most (414 beyond). Default 8 KiB. */
  maxUrlLength?: number
}

/** Options of `new Catzilla(options)`. */
export interface AppOptions {
  /**
   * The most a stream's ring buffer grows to, in bytes. Default 512 KiB. Rings start at 16 KiB
   * and grow only for a client that took 8 MiB and kept up, so slow clients stay at 16 KiB.
   */
  bufferSize?: number
  /**
   * Sum of all stream buffers in the process, in bytes. When reached, stream writers wait
   * (backpressure) instead of the process growing; `stats().streamMemory` shows the use.
   * Default 0: unlimited (each stream is still bounded by its `bufferSize`).
   */
  maxStreamMemory?: number
  /**
   * Bytes all disconnected WebSocket sessions (routes with `resume`) may hold queued together.
   * Past it the oldest messages of the session being sent to are dropped (and the client told),
   * so offline clients can never grow the process. Default 64 MiB; `stats().wsOfflineBytes`
   * shows the use.
   */
  maxOfflineMemory?: number
  /** Timeouts. */
  timeouts?: TimeoutOptions
  /** Limits. */
  limits?: LimitOptions
  /**
   * Messages each topic keeps so SSE subscribers (`sse.topic`) can resume after a reconnect
   * (`Last-Event-ID`) or get recent history (`replay: n`); also bounded to 1 MiB per topic and
   * 64 MiB across all topics (oldest first). Default 1000; `0` disables history.
   */
  topicHistory?: number
  /**
   * Topics across processes through Redis: a publish on any process reaches every subscriber of
   * every process; topic history lives in Redis streams (`topicHistory` entries per topic), so an
   * SSE client's `Last-Event-ID` resumes on whichever process it reconnects to. Fan-out stays in
   * Rust: one Redis subscription per topic per process. Off by default.
   */
  redis?: RedisOptions
  /**
   * Response compression in Rust (`br`, `gzip`), negotiated with `Accept-Encoding`. Default
   * `false`: a compressed stream keeps a compressor per connection (hundreds of KiB with gzip),
   * which would break the small, fixed memory per slow client that streams otherwise have; turn
   * it on when responses are large text and clients are few or fast. `true` uses the defaults.
   */
  compression?: boolean | CompressionOptions
  /** Use the first `X-Forwarded-For` address as `req.ip`. Default `false`: only behind a trusted proxy. */
  trustProxy?: boolean
  /**
   * Linux: while the app serves, each JS thread that runs its handlers (the main thread, and
   * the workers of `serve`) runs under the `SCHED_BATCH` policy; `close()` restores the default
   * on the thread that switched (worker threads started while serving inherit the policy and
   * end with their worker).
   * A thread woken by the Rust I/O thread then no longer preempts it on a shared CPU, so the
   * requests that arrived together reach JS as one batch instead of one context switch pair
   * each. Measured on one core: hello +23 %, JSON +32 %, p99 latency halved. CPU share and nice
   * value are unchanged; threads and processes the JS thread starts while serving inherit the
   * policy (as any scheduling attribute); a thread already under another policy than the default
   * is left alone. Default `true`; `false` leaves the thread alone.
   */
  batchScheduling?: boolean
  /**
   * Called with every error that becomes a 500 or aborts a stream. Default: log to stderr.
   * `HTTPError`s are answers, not failures, and are not reported.
   */
  onError?: (err: unknown, req: CatzillaRequest) => void
}

/** A content coding the server can produce (`deflate` is the zlib format, as HTTP defines it). */
export type ContentCoding = 'br' | 'zstd' | 'gzip' | 'deflate'

/** Options of `compression`. */
export interface CompressionOptions {
  /** Whole bodies smaller than this many bytes are sent uncompressed (streams always are compressed). Default 1024: below it the headers cost more than the saving. */
  threshold?: number
  /** Codings in order of preference, used to break ties between codings the client gives the same q-value. Default `['br', 'zstd', 'gzip', 'deflate']`: brotli and zstd are smaller than gzip at similar speed at their default levels; `deflate` last because it is the least efficient. */
  encodings?: ContentCoding[]
  /** One level for every coding, clamped to each one's range: gzip/deflate 0–9 (default 6), brotli 0–11 (default 4), zstd 1–19 (default 3). The defaults are the usual balance for dynamic responses. */
  level?: number
}

/** Options of the Redis adapter (`AppOptions.redis`). */
export interface RedisOptions {
  /** `redis://[user:password@]host:port[/db]` (TLS `rediss://` is not supported yet). */
  url: string
  /** Prefix of every key and channel (`<prefix>:t:<topic>` streams, `<prefix>:c:<topic>` channels), so apps can share a Redis. Default `catzilla`. */
  prefix?: string
  /**
   * Seconds a topic's stream (its history) stays in Redis after its last publish, so per-user or
   * per-document topics do not accumulate; a resume after it expired gets `cz-gap`. Default
   * 86 400 (a day); `0` keeps streams forever.
   */
  ttl?: number
}

/** Options of `app.static(prefix, dir, options)`. */
export interface StaticOptions {
  /** File served for a directory. Default `index.html`; `false`: directories are 404. */
  index?: string | false
  /** Serve names starting with `.`. Default `false` (they are 404: `.env`, `.git`). */
  dotfiles?: boolean
  /** `Cache-Control: public, max-age=<seconds>` on every file. Default: no `Cache-Control`. */
  maxAge?: number
  /** A full `Cache-Control` value (wins over `maxAge`). */
  cacheControl?: string
}

/** Options of `app.listen()`. */
export interface ListenOptions {
  /** TCP port; `0` picks a free one. Default 3000. */
  port?: number
  /** Interface address. Default `127.0.0.1`; use `0.0.0.0` to accept remote clients. */
  host?: string
}

/** Where the app listens. */
export interface ListenResult {
  /** Bound port. */
  port: number
  /** Bound address. */
  host: string
  /** `http://host:port`. */
  url: string
}

/** Options of `app.close()`. */
export interface CloseOptions {
  /** Milliseconds in-flight responses may take to finish before connections are cut. Default 10 000. */
  timeout?: number
}
