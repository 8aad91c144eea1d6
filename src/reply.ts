/** Whole-body replies, error replies and response-header packing: the one-crossing answers. */
import { CatzillaError, defaultMessage, errorStatus, HTTPError } from './errors.js'
import { Reply } from './native.js'
import type { NativeServer } from './native.js'
import type { CatzillaRequest } from './request.js'
import type { SinkHost } from './streaming.js'

/** What `respond` needs from the app. @internal */
export interface ReplyHost extends SinkHost {
  readonly native: NativeServer
  /** The request is answered (or gone): forget it. */
  finish(req: CatzillaRequest): void
  /** Reports an unexpected error (500 or aborted stream). */
  reportError(err: unknown, req?: CatzillaRequest): void
  /** Lets the app's error hook answer a failure before the first byte; `true` if it took over. */
  answerError?(req: CatzillaRequest, err: unknown): boolean
}

/** Content types chosen by the return-value table. */
export const TEXT = 'text/plain; charset=utf-8'
export const OCTET = 'application/octet-stream'

/** Header input accepted by `packHeaders`. */
export type HeaderInput = Record<string, string | number | readonly string[]> | Iterable<[string, string]>

/**
 * Packs headers as `name\0value\0...` for the native side, with the request's own response
 * headers (`req.setHeader`) appended; rejects NUL (it would split fields). `contentType` is added
 * when no header sets one.
 */
export function packHeaders(req: CatzillaRequest, headers: HeaderInput | undefined, contentType?: string): string {
  // Fast path of every plain reply: only a content type.
  if (headers === undefined && req._responseHeaders === undefined) return contentType === undefined ? '' : appendPacked('', 'content-type', contentType)
  let out = ''
  let hasType = false
  const add = (name: string, value: string): void => {
    if (name.includes('\0') || value.includes('\0')) {
      throw new CatzillaError('CZ_BAD_HEADER', `header ${JSON.stringify(name)} contains a NUL byte`)
    }
    if (!hasType && name.length === 12 && name.toLowerCase() === 'content-type') hasType = true
    out = appendPacked(out, name, value)
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
  const extra = req._responseHeaders
  if (extra !== undefined) for (const [k, v] of extra) add(k, v)
  if (!hasType && contentType !== undefined) add('content-type', contentType)
  return out
}

/**
 * Appends one header to a packed list (`name\0value\0name\0value`, the one format
 * `parse_headers` in crates/node/src/server.rs reads). Callers pass names and values that are
 * NUL-free (checked in `packHeaders`, or built from printable ASCII).
 */
export function appendPacked(packed: string, name: string, value: string): string {
  return packed === '' ? `${name}\0${value}` : `${packed}\0${name}\0${value}`
}

/** `true` when a packed list has a header `name` (lower-case), in any case. */
function hasPacked(packed: string, name: string): boolean {
  const fields = packed.split('\0')
  for (let i = 0; i < fields.length; i += 2) if (fields[i]!.toLowerCase() === name) return true
  return false
}

/** The packed headers of a plain-text error answer. */
export const TEXT_HEADERS = appendPacked('', 'content-type', TEXT)

/**
 * Adds `X-Content-Type-Options: nosniff` to packed stream headers unless they set it: without it
 * Chromium holds a streamed `text/plain` back (MIME sniffing) until ~1 KiB or the end.
 */
export function noSniff(packed: string): string {
  return hasPacked(packed, 'x-content-type-options') ? packed : appendPacked(packed, 'x-content-type-options', 'nosniff')
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

function done(host: ReplyHost, req: CatzillaRequest, code: number, status: number, bytes: number): void {
  if (code === Reply.BadHeader) {
    host.reportError(new CatzillaError('CZ_BAD_HEADER', 'invalid response status or header'), req)
    host.native.replyText(req._id, 500, TEXT_HEADERS, 'Internal Server Error')
    status = 500
  }
  host.finish(req)
  req._finished(status, bytes, code === Reply.Gone)
}

/** Sends a whole text body with the given content type (headers from `req.setHeader` included). */
export function sendText(
  host: ReplyHost,
  req: CatzillaRequest,
  status: number,
  type: string,
  body: string,
  extra?: HeaderInput,
): void {
  let headers: string
  try {
    headers = packHeaders(req, extra, type)
  } catch (err) {
    return fail(host, req, err)
  }
  done(host, req, host.native.replyText(req._id, status, headers, body), status, body.length)
}

/** Sends a whole binary (or empty) body with already packed headers. */
export function sendBytes(host: ReplyHost, req: CatzillaRequest, status: number, headers: string, body?: Uint8Array): void {
  const code = host.native.reply(req._id, status, headers, body === undefined ? null : asBuffer(body))
  done(host, req, code, status, body?.byteLength ?? 0)
}

/**
 * Answers a failure before the first byte. The app's `onError` hook may answer first; otherwise
 * `HTTPError` → its status, headers and message (or JSON body); an `Error` with a numeric
 * `status`/`statusCode` in 400–599 → that status (its message for 4xx, the reason phrase for
 * 5xx); anything else → 500 with no details.
 */
export function fail(host: ReplyHost, req: CatzillaRequest, err: unknown): void {
  if (req.aborted) {
    host.finish(req)
    return req._finished(0, 0, true)
  }
  if (host.answerError?.(req, err)) return
  const status = errorStatus(err)
  if (status !== undefined) {
    const h = err instanceof HTTPError ? err.headers : undefined
    const json = err instanceof HTTPError && err.body !== undefined ? JSON.stringify(err.body) : undefined
    const body = json ?? (status < 500 || err instanceof HTTPError ? (err as Error).message : defaultMessage(status))
    const type = json === undefined ? TEXT : 'application/json'
    if (status >= 500 && !(err instanceof HTTPError) && !req._errorReported) host.reportError(err, req)
    let headers: string
    try {
      headers = packHeaders(req, h, type)
    } catch {
      headers = appendPacked('', 'content-type', type)
    }
    const code = host.native.replyText(req._id, status, headers, body)
    return done(host, req, code, status, Buffer.byteLength(body))
  }
  if (!req._errorReported) host.reportError(err, req)
  const code = host.native.replyText(req._id, 500, TEXT_HEADERS, 'Internal Server Error')
  done(host, req, code, 500, 21)
}

/** `true` for sync iterables. */
export function isIterable(v: object): v is Iterable<unknown> {
  return typeof (v as Iterable<unknown>)[Symbol.iterator] === 'function'
}

/** `true` for async iterables (generators, Node Readables, WHATWG ReadableStreams). */
export function isAsyncIterable(v: object): v is AsyncIterable<unknown> {
  return typeof (v as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'
}

