/** Turns whatever a handler returned into a response: whole bodies in one call, streams through the ring. */
import { HTTPError } from './errors.js'
import { streamIterable, streamResponse } from './pump.js'
import { fail, isAsyncIterable, isIterable, OCTET, packHeaders, sendBytes, sendText, TEXT } from './reply.js'
import type { ReplyHost } from './reply.js'
import type { CatzillaRequest } from './request.js'
import { StreamingResponse } from './streaming.js'
import { SSETopic, subscribeTopic } from './topic.js'
import { FileResponse, sendFile } from './file.js'
import { BodyResponse } from './body.js'

const JSON_TYPE = 'application/json'

/** Sends a handler's return value. Never throws; failures become 500s or aborted streams. */
export function respond(host: ReplyHost, req: CatzillaRequest, value: unknown): void {
  try {
    respondUnsafe(host, req, value)
  } catch (err) {
    fail(host, req, err)
  }
}

function respondUnsafe(host: ReplyHost, req: CatzillaRequest, value: unknown): void {
  if (typeof value === 'string') return sendText(host, req, 200, TEXT, value)
  if (value === undefined || value === null) return sendBytes(host, req, 204, packHeaders(req, undefined))
  if (typeof value !== 'object') {
    if (typeof value === 'function') throw new TypeError('a handler returned a function; wrap writer functions in StreamingResponse')
    if (typeof value === 'symbol' || typeof value === 'bigint') {
      throw new TypeError(`a handler returned a ${typeof value}, which is not a response: return a string, bytes, an object (JSON) or a stream`)
    }
    return sendText(host, req, 200, JSON_TYPE, JSON.stringify(value))
  }
  if (value instanceof Uint8Array) return sendBytes(host, req, 200, packHeaders(req, undefined, OCTET), value)
  if (value instanceof BodyResponse) return sendText(host, req, value.status, value.contentType, value.body, value.headers)
  if (value instanceof HTTPError) return fail(host, req, value)
  if (value instanceof SSETopic) return subscribeTopic(host, req, value)
  if (value instanceof FileResponse) return void sendFile(host, req, value).catch((e) => fail(host, req, e))
  if (value instanceof StreamingResponse) return void streamResponse(host, req, value).catch((e) => fail(host, req, e))
  if (value instanceof Response) return void webResponse(host, req, value).catch((e) => fail(host, req, e))
  if (Array.isArray(value)) return sendText(host, req, 200, JSON_TYPE, JSON.stringify(value))
  if (value instanceof ArrayBuffer) return sendBytes(host, req, 200, packHeaders(req, undefined, OCTET), new Uint8Array(value))
  if (isAsyncIterable(value) || isIterable(value)) {
    return void streamIterable(host, req, value, {}, undefined, 200, undefined)
  }
  sendText(host, req, 200, JSON_TYPE, JSON.stringify(value))
}

/**
 * Sends a WHATWG `Response`. A body that is already complete (built from a string, bytes or
 * JSON: its stream ends right after the first chunk) is sent whole with `Content-Length`; a live
 * stream is streamed. Telling them apart waits at most one macrotask, never for the producer.
 */
async function webResponse(host: ReplyHost, req: CatzillaRequest, res: Response): Promise<void> {
  if (res.body === null) return sendBytes(host, req, res.status, packHeaders(req, res.headers))
  const reader = res.body.getReader()
  const first = await reader.read()
  if (first.done) return sendBytes(host, req, res.status, packHeaders(req, res.headers))
  const pending = reader.read()
  const settled = await Promise.race([pending, new Promise<null>((r) => setImmediate(() => r(null)))])
  if (settled !== null && settled.done) {
    return sendBytes(host, req, res.status, packHeaders(req, res.headers), first.value)
  }
  const rest = async function* () {
    try {
      yield first.value
      let next = settled ?? (await pending)
      while (!next.done) {
        yield next.value
        next = await reader.read()
      }
    } finally {
      reader.releaseLock()
      void res.body?.cancel().catch(() => {})
    }
  }
  await streamIterable(host, req, rest(), {}, undefined, res.status, res.headers)
}

