/** Turns whatever a handler returned into a native reply: whole bodies in one call, streams through the ring. */
import { CatzillaError, HTTPError } from './errors.js'
import { Reply, Write } from './native.js'
import type { NativeServer } from './native.js'
import type { CatzillaRequest } from './request.js'
import { StreamingResponse, StreamingWriter, StreamSink } from './streaming.js'
import type { SinkHost, StreamingOptions } from './streaming.js'

/** What `respond` needs from the app. @internal */
export interface ReplyHost extends SinkHost {
  readonly native: NativeServer
  /** The request is answered (or gone): forget it. */
  finish(req: CatzillaRequest): void
  /** Reports an unexpected error (500 or aborted stream). */
  reportError(err: unknown, req?: CatzillaRequest): void
}

const TEXT = 'text/plain; charset=utf-8'
const OCTET = 'application/octet-stream'
const JSON_TYPE = 'application/json'
const H_TEXT = `content-type\0${TEXT}`
const H_OCTET = `content-type\0${OCTET}`
const H_JSON = `content-type\0${JSON_TYPE}`

type HeaderInput = Record<string, string | number | readonly string[]> | Iterable<[string, string]>

/** Packs headers as `name\0value\0...` for the native side; rejects NUL (it would split fields). */
export function packHeaders(headers: HeaderInput | undefined, contentType?: string): string {
  let out = ''
  let hasType = false
  const add = (name: string, value: string): void => {
    if (name.includes('\0') || value.includes('\0')) {
      throw new CatzillaError('CZ_BAD_HEADER', `header ${JSON.stringify(name)} contains a NUL byte`)
    }
    if (!hasType && name.length === 12 && name.toLowerCase() === 'content-type') hasType = true
    out += out === '' ? `${name}\0${value}` : `\0${name}\0${value}`
  }
  if (headers !== undefined) {
    if (Symbol.iterator in headers) {
      for (const [k, v] of headers as Iterable<[string, string]>) add(k, v)
    } else {
      for (const [k, v] of Object.entries(headers)) {
        if (Array.isArray(v)) for (const item of v) add(k, String(item))
        else add(k, String(v))
      }
    }
  }
  if (!hasType && contentType !== undefined) add('content-type', contentType)
  return out
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

function checkReply(host: ReplyHost, req: CatzillaRequest, code: number): void {
  if (code === Reply.BadHeader) {
    host.reportError(new CatzillaError('CZ_BAD_HEADER', 'invalid response status or header'), req)
    host.native.replyText(req._id, 500, H_TEXT, 'Internal Server Error')
  }
  host.finish(req)
}

function sendText(host: ReplyHost, req: CatzillaRequest, status: number, headers: string, body: string): void {
  checkReply(host, req, host.native.replyText(req._id, status, headers, body))
}

function sendBytes(host: ReplyHost, req: CatzillaRequest, status: number, headers: string, body?: Uint8Array): void {
  checkReply(host, req, host.native.reply(req._id, status, headers, body === undefined ? null : asBuffer(body)))
}

/** Answers a failure before the first byte: `HTTPError` → its status; anything else → 500. */
export function fail(host: ReplyHost, req: CatzillaRequest, err: unknown): void {
  if (req.aborted) return host.finish(req)
  if (err instanceof HTTPError) {
    let headers: string
    try {
      headers = packHeaders(err.headers, TEXT)
    } catch {
      headers = H_TEXT
    }
    return sendText(host, req, err.status, headers, err.message)
  }
  host.reportError(err, req)
  sendText(host, req, 500, H_TEXT, 'Internal Server Error')
}

function isIterable(v: object): v is Iterable<unknown> {
  return typeof (v as Iterable<unknown>)[Symbol.iterator] === 'function'
}

function isAsyncIterable(v: object): v is AsyncIterable<unknown> {
  return typeof (v as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'
}

/** Sends a handler's return value. Never throws; failures become 500s or aborted streams. */
export function respond(host: ReplyHost, req: CatzillaRequest, value: unknown): void {
  try {
    respondUnsafe(host, req, value)
  } catch (err) {
    fail(host, req, err)
  }
}

function respondUnsafe(host: ReplyHost, req: CatzillaRequest, value: unknown): void {
  if (typeof value === 'string') return sendText(host, req, 200, H_TEXT, value)
  if (value === undefined || value === null) return sendBytes(host, req, 204, '')
  if (typeof value !== 'object') {
    if (typeof value === 'function') throw new TypeError('a handler returned a function; wrap writer functions in StreamingResponse')
    return sendText(host, req, 200, H_JSON, JSON.stringify(value))
  }
  if (value instanceof Uint8Array) return sendBytes(host, req, 200, H_OCTET, value)
  if (value instanceof HTTPError) return fail(host, req, value)
  if (value instanceof StreamingResponse) return void streamResponse(host, req, value)
  if (value instanceof Response) return void webResponse(host, req, value)
  if (Array.isArray(value)) return sendText(host, req, 200, H_JSON, JSON.stringify(value))
  if (value instanceof ArrayBuffer) return sendBytes(host, req, 200, H_OCTET, new Uint8Array(value))
  if (isAsyncIterable(value) || isIterable(value)) {
    return void streamIterable(host, req, value, {}, 200, undefined)
  }
  sendText(host, req, 200, H_JSON, JSON.stringify(value))
}

async function webResponse(host: ReplyHost, req: CatzillaRequest, res: Response): Promise<void> {
  const headers = packHeaders(res.headers)
  if (res.body === null) return sendBytes(host, req, res.status, headers)
  await streamIterable(host, req, res.body as unknown as AsyncIterable<Uint8Array>, {}, res.status, res.headers)
}

async function streamResponse(host: ReplyHost, req: CatzillaRequest, r: StreamingResponse): Promise<void> {
  const opts = r.options
  const status = opts.status ?? 200
  let content: unknown = r.content
  if (typeof content === 'function') {
    // A function that declares a parameter is a writer function; one without returns the source.
    if (content.length >= 1) return writerStream(host, req, content as (w: StreamingWriter) => unknown, opts)
    content = (content as () => unknown)()
  }
  if (content === null || typeof content !== 'object' || !(isAsyncIterable(content) || isIterable(content))) {
    throw new TypeError('StreamingResponse content must be an iterable, async iterable, stream or function')
  }
  await streamIterable(host, req, content as AsyncIterable<unknown> | Iterable<unknown>, opts, status, opts.headers)
}

function safeReturn(it: Iterator<unknown> | AsyncIterator<unknown>): void {
  try {
    const r = it.return?.()
    if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(undefined, () => {})
  } catch {
    /* a generator that throws from finally has nothing more to say to a gone client */
  }
}

/**
 * Streams an (async) iterable: pulls the first chunk before sending the head (so an early
 * failure is still a clean 500), then pulls one chunk per free ring slot, never ahead.
 */
async function streamIterable(
  host: ReplyHost,
  req: CatzillaRequest,
  source: AsyncIterable<unknown> | Iterable<unknown>,
  opts: StreamingOptions,
  status: number,
  headers: HeaderInput | undefined,
): Promise<void> {
  const it: AsyncIterator<unknown> | Iterator<unknown> = isAsyncIterable(source)
    ? source[Symbol.asyncIterator]()
    : (source as Iterable<unknown>)[Symbol.iterator]()
  let first: IteratorResult<unknown>
  try {
    first = await it.next()
  } catch (err) {
    return fail(host, req, err)
  }
  if (req.aborted) {
    safeReturn(it)
    return host.finish(req)
  }
  const type = opts.contentType ?? (typeof first.value === 'string' || first.done ? TEXT : OCTET)
  let packed: string
  try {
    packed = packHeaders(headers, type)
  } catch (err) {
    safeReturn(it)
    return fail(host, req, err)
  }
  if (first.done) return sendBytes(host, req, status, packed)
  const sink = new StreamSink(req._id, opts)
  try {
    if (!sink.start(host, status, packed)) {
      safeReturn(it)
      return host.finish(req)
    }
  } catch (err) {
    safeReturn(it)
    return fail(host, req, err)
  }
  if (req.method === 'HEAD') {
    sink.end()
    safeReturn(it)
    return
  }
  await pump(host, req, sink, it, first.value)
}

async function pump(
  host: ReplyHost,
  req: CatzillaRequest,
  sink: StreamSink,
  it: AsyncIterator<unknown> | Iterator<unknown>,
  firstValue: unknown,
): Promise<void> {
  let pulling = false
  // A client that leaves while the generator is busy: queue its return() so `finally` runs.
  sink.onClosed((aborted) => {
    if (aborted && pulling) safeReturn(it)
  })
  let value = firstValue
  try {
    for (;;) {
      const status = sink.write(value)
      if (status === Write.Closed) break
      if (status === Write.Full) await sink.waitDrain()
      if (sink.closed) break
      pulling = true
      let r = it.next()
      if (r instanceof Promise) r = await r
      pulling = false
      if ((r as IteratorResult<unknown>).done) {
        sink.end()
        return
      }
      value = (r as IteratorResult<unknown>).value
      if (sink.closed) break
    }
  } catch (err) {
    pulling = false
    if (!sink.closed) {
      sink.abort()
      host.reportError(err, req)
      sink.options.onError?.(err)
    }
    return
  }
  safeReturn(it)
}

async function writerStream(
  host: ReplyHost,
  req: CatzillaRequest,
  fn: (w: StreamingWriter) => unknown,
  opts: StreamingOptions,
): Promise<void> {
  const sink = new StreamSink(req._id, opts)
  const packed = packHeaders(opts.headers, opts.contentType ?? OCTET)
  const writer = new StreamingWriter(sink, () => sink.start(host, opts.status ?? 200, packed), req.signal)
  try {
    await fn(writer)
  } catch (err) {
    if (!writer.started) return fail(host, req, err)
    if (!writer.closed) {
      sink.abort()
      host.reportError(err, req)
      opts.onError?.(err)
    }
    return
  }
  if (!writer.started && req.aborted) return host.finish(req)
  await writer.close()
}
