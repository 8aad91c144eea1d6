/** The pull-based pump: moves chunks from iterables and writer functions into the Rust ring, never ahead of the client. */
import { Write } from './native.js'
import type { CatzillaRequest } from './request.js'
import { fail, isAsyncIterable, isIterable, noSniff, OCTET, packHeaders, sendBytes, TEXT } from './reply.js'
import type { HeaderInput, ReplyHost } from './reply.js'
import { badChunk, StreamingResponse, StreamingWriter, StreamSink, typeName } from './streaming.js'
import type { StreamFormat, StreamingOptions } from './streaming.js'

type AnyIterator = AsyncIterator<unknown> | Iterator<unknown>
type Source = AsyncIterable<unknown> | Iterable<unknown>

/** Returns `v` if it is a stream chunk; else throws `CZ_BAD_CHUNK` naming its type and the source's. */
function checkChunk(v: unknown, source: object): unknown {
  if (typeof v === 'string' || v instanceof Uint8Array) return v
  const from = typeName(source)
  throw badChunk(v, ` as the first item of ${/^[AEIOU]/.test(from) ? 'an' : 'a'} ${from}`)
}

/** Sends a `StreamingResponse` (plain, typed, or writer function). */
export async function streamResponse(host: ReplyHost, req: CatzillaRequest, r: StreamingResponse): Promise<void> {
  const opts = r.options
  let content: unknown = r.content
  if (typeof content === 'function') {
    // A function that declares a parameter is a writer function; one without returns the source.
    if (content.length >= 1) return writerStream(host, req, content as (w: StreamingWriter) => unknown, opts)
    content = (content as () => unknown)()
  }
  if (content === null || typeof content !== 'object' || !(isAsyncIterable(content) || isIterable(content))) {
    throw new TypeError('StreamingResponse content must be an iterable, async iterable, stream or function')
  }
  let source = content as Source
  if (r.format?.wrap) source = r.format.wrap(source, req)
  await streamIterable(host, req, source, opts, r.format, opts.status ?? 200, opts.headers)
}

/** Calls `return()` on an iterator, swallowing what a finishing generator may throw. */
export function safeReturn(it: AnyIterator): void {
  try {
    const r = it.return?.()
    if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(undefined, () => {})
  } catch {
    /* a generator that throws from finally has nothing more to say to a gone client */
  }
}

function startSink(
  host: ReplyHost,
  req: CatzillaRequest,
  sink: StreamSink,
  status: number,
  packed: string,
  format: StreamFormat | undefined,
): boolean {
  sink.reportError = (err) => host.reportError(err, req)
  if (!sink.start(host, status, noSniff(packed), format)) return false
  sink.onCloseInfo = (info) => req._finished(status, info.bytes, info.aborted, info.chunks)
  if (format?.prelude) sink.write(format.prelude)
  return true
}

/**
 * Streams an (async) iterable. Unless the format asks for an immediate head, the first chunk is
 * pulled before the head is sent, so an early failure is still a clean 500. After that, one chunk
 * is pulled per free ring slot, never ahead.
 */
export async function streamIterable(
  host: ReplyHost,
  req: CatzillaRequest,
  source: Source,
  opts: StreamingOptions,
  format: StreamFormat | undefined,
  status: number,
  headers: HeaderInput | undefined,
): Promise<void> {
  const it: AnyIterator = isAsyncIterable(source)
    ? source[Symbol.asyncIterator]()
    : (source as Iterable<unknown>)[Symbol.iterator]()
  const sink = new StreamSink(req._id, opts)
  let first: IteratorResult<unknown> | undefined
  if (format?.immediate) {
    const packed = packHeaders(req, headers, opts.contentType ?? OCTET)
    if (!startSink(host, req, sink, status, packed, format)) {
      safeReturn(it)
      return host.finish(req)
    }
  } else {
    try {
      first = await it.next()
    } catch (err) {
      return fail(host, req, err)
    }
    if (req.aborted) {
      safeReturn(it)
      host.finish(req)
      return req._finished(0, 0, true)
    }
    const type = opts.contentType ?? (typeof first.value === 'string' || first.done || format?.encode ? TEXT : OCTET)
    let packed: string
    try {
      packed = packHeaders(req, headers, type)
    } catch (err) {
      safeReturn(it)
      return fail(host, req, err)
    }
    if (first.done) return sendBytes(host, req, status, packed)
    // Encode or check the first chunk before the head goes out: a source whose first item is not
    // a chunk (a Map's entries, a Promise from a sync generator, a plain object) is still a clean
    // 500 naming the type, instead of a 200 followed by a cut connection.
    try {
      const encode = format?.encode ?? format?.pack
      first = { done: false, value: encode ? encode(first.value) : checkChunk(first.value, source) }
    } catch (err) {
      safeReturn(it)
      return fail(host, req, err)
    }
    try {
      if (!startSink(host, req, sink, status, packed, format)) {
        safeReturn(it)
        return host.finish(req)
      }
    } catch (err) {
      safeReturn(it)
      return fail(host, req, err)
    }
  }
  if (req.method === 'HEAD') {
    // hyper sends no body for HEAD and drops the stream, which the ring reports as cut; but the
    // head was handed over (startSink succeeded), and for HEAD that is the whole response.
    sink.onCloseInfo = (info) => req._finished(status, 0, false, info.chunks)
    sink.end()
    safeReturn(it)
    return
  }
  await pump(host, req, sink, it, first, format?.encode ?? format?.pack)
}

async function pump(
  host: ReplyHost,
  req: CatzillaRequest,
  sink: StreamSink,
  it: AnyIterator,
  first: IteratorResult<unknown> | undefined,
  encode: ((item: unknown) => string) | undefined,
): Promise<void> {
  let pulling = false
  // A client that leaves while the generator is busy: queue its return() so `finally` runs.
  sink.onClosed((aborted) => {
    if (aborted && pulling) safeReturn(it)
  })
  try {
    let r = first
    for (;;) {
      if (r === undefined) {
        pulling = true
        const next = it.next()
        r = (next instanceof Promise ? await next : next) as IteratorResult<unknown>
        pulling = false
        if (sink.closed) break
      }
      if (r.done) {
        sink.end()
        return
      }
      // The first item was encoded before the head was sent.
      const status = sink.write(encode && r !== first ? encode(r.value) : r.value)
      r = undefined
      if (status === Write.Closed) break
      if (status === Write.Full) await sink.waitDrain()
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
  const packed = packHeaders(req, opts.headers, opts.contentType ?? OCTET)
  const writer = new StreamingWriter(sink, () => startSink(host, req, sink, opts.status ?? 200, packed, undefined), req.signal)
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
