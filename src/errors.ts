/** Error classes with stable `code`s, shared by the API and the Rust bridge. */

/** Stable error codes carried as `err.code`. */
export type ErrorCode =
  | 'CZ_STREAM_CLOSED'
  | 'CZ_BAD_HEADER'
  | 'CZ_ROUTE'
  | 'CZ_LISTEN'
  | 'CZ_BODY'
  | 'CZ_BODY_USED'
  | 'CZ_BAD_CHUNK'
  | 'CZ_SSE_FIELD'
  | 'CZ_STATIC'
  | 'CZ_NATIVE'
  | 'CZ_WORKER'
  | 'CZ_WORKER_ROUTES'
  | 'CZ_INTERNAL'

/** Base class of Catzilla's own errors. */
export class CatzillaError extends Error {
  /** Stable machine-readable code, e.g. `CZ_STREAM_CLOSED`. */
  readonly code: ErrorCode
  /** The operating system's error name behind it, when there is one (`EADDRINUSE` for `CZ_LISTEN`). */
  readonly osCode: string | undefined

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; osCode?: string }) {
    super(message, options)
    this.name = 'CatzillaError'
    this.code = code
    this.osCode = options?.osCode
  }
}

/** Thrown by writes after the client went away or the stream ended. */
export class StreamClosedError extends CatzillaError {
  constructor(message = 'the stream is closed (client disconnected or stream ended)') {
    super('CZ_STREAM_CLOSED', message)
    this.name = 'StreamClosedError'
  }
}

/** Options of {@link HTTPError}. */
export interface HTTPErrorOptions {
  /** Extra response headers, e.g. `WWW-Authenticate`. */
  headers?: Record<string, string>
  /** A JSON body sent instead of the message (`application/json`), e.g. validation details. */
  body?: unknown
  /** The underlying cause, kept for logs; never sent to the client. */
  cause?: unknown
}

/**
 * Throw from a handler or middleware to answer with `status` and a short text body.
 *
 * @example
 * throw new HTTPError(404, 'No such user')
 */
export class HTTPError extends Error {
  /** HTTP status code (400–599). */
  readonly status: number
  /** Extra response headers. */
  readonly headers: Record<string, string>
  /** JSON body sent instead of the message, if any. */
  readonly body: unknown

  constructor(status: number, message?: string, options: HTTPErrorOptions = {}) {
    super(message ?? defaultMessage(status), { cause: options.cause })
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new RangeError(`HTTPError status must be 400-599, got ${status}`)
    }
    this.name = 'HTTPError'
    this.status = status
    this.headers = options.headers ?? {}
    this.body = options.body
  }
}

/**
 * The status an error asks for: an `HTTPError`'s, or a numeric `status` / `statusCode` in
 * 400–599 on any other `Error` (the habit of Koa's `ctx.throw`, `http-errors` and Fastify);
 * `undefined` for anything else (answered 500).
 */
export function errorStatus(err: unknown): number | undefined {
  if (err instanceof HTTPError) return err.status
  if (!(err instanceof Error)) return undefined
  const s = (err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode
  return typeof s === 'number' && Number.isInteger(s) && s >= 400 && s <= 599 ? s : undefined
}

const MESSAGES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
}

/** The reason phrase used when an `HTTPError` has no message. */
export function defaultMessage(status: number): string {
  return MESSAGES[status] ?? (status < 500 ? 'Client Error' : 'Server Error')
}

/** Turns a native error message `CZ_CODE: text` into a `CatzillaError`. */
export function fromNative(err: unknown): unknown {
  if (err instanceof Error) {
    const m = /^(CZ_[A-Z_]+): (.*)$/s.exec(err.message)
    if (m) {
      const osCode = /^(E[A-Z]+) /.exec(m[2] ?? '')?.[1]
      return new CatzillaError(m[1] as ErrorCode, m[2] ?? '', { cause: err, osCode })
    }
  }
  return err
}
