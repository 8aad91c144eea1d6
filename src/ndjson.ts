/** Newline-delimited JSON streams: one JSON document per line, `application/x-ndjson`. */
import { CatzillaError } from './errors.js'
import { StreamingResponse } from './streaming.js'
import type { StreamContent, StreamingOptions } from './streaming.js'

function encodeLine(value: unknown): string {
  const text = JSON.stringify(value)
  if (text === undefined) throw new CatzillaError('CZ_BAD_CHUNK', `ndjson cannot encode ${typeof value}`)
  return text + '\n'
}

/**
 * Streams each item of `source` as one line of JSON. A value that cannot be serialised (a BigInt,
 * a cycle, `undefined`) ends the stream as an error: the client sees a truncated body.
 *
 * @example
 * app.get('/rows', () => ndjson(db.rows()))
 */
export function ndjson(
  source: AsyncIterable<unknown> | Iterable<unknown> | (() => AsyncIterable<unknown> | Iterable<unknown>),
  options: Omit<StreamingOptions, 'contentType'> = {},
): StreamingResponse {
  return new StreamingResponse(source as StreamContent, { ...options, contentType: 'application/x-ndjson' }, { encode: encodeLine })
}
