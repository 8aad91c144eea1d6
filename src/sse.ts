/** Server-Sent Events: `sse(source, options)` streams events (encoded in Rust per the HTML spec), with heartbeat and replay. */
import { CatzillaError, fromNative } from './errors.js'
import { encodeSsePacked } from './native.js'
import { StreamingResponse } from './streaming.js'
import { sseTopic } from './topic.js'
import type { StreamContent, StreamingOptions } from './streaming.js'

/** One SSE event. Any other value is sent as `data` (strings as-is, everything else as JSON). */
export interface SSEEvent {
  /** Event id; the browser sends it back as `Last-Event-ID` when it reconnects. */
  id?: string | number
  /** Event type (`addEventListener(type)` on the client); default `message`. */
  event?: string
  /** Payload: strings as-is (multi-line allowed), anything else JSON-encoded. */
  data?: unknown
  /** Reconnection delay in ms for the client. */
  retry?: number
  /** A comment line (ignored by clients, useful for padding or debugging). */
  comment?: string
}

/** Where SSE events come from. */
export type SSESource = AsyncIterable<unknown> | Iterable<unknown> | (() => AsyncIterable<unknown> | Iterable<unknown>)

/** Options of {@link sse}. */
export interface SSEOptions extends Omit<StreamingOptions, 'contentType'> {
  /** Sent once at the start: the client's reconnection delay in ms. */
  retry?: number
  /**
   * Milliseconds of silence after which a `:` comment is sent, so proxies and idle timeouts keep
   * quiet streams open. Default 15 000 (below nginx's 60 s and most load balancers); `0` disables.
   * Sent by Rust between events, without entering JS.
   */
  heartbeat?: number
  /** Events to resend to a reconnecting client, given its `Last-Event-ID`; sent before the live source. */
  replay?: (lastEventId: string) => AsyncIterable<unknown> | Iterable<unknown>
}

const EVENT_KEYS = new Set(['id', 'event', 'data', 'retry', 'comment'])

function isEvent(v: unknown): v is SSEEvent {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const keys = Object.keys(v)
  return keys.length > 0 && keys.every((k) => EVENT_KEYS.has(k))
}

function field(tag: string, value: string): string {
  return tag + value.length + ':' + value
}

function text(data: unknown): string {
  return typeof data === 'string' ? data : (JSON.stringify(data) ?? 'null')
}

/** Milliseconds the native side can hold (u32): a non-negative integer up to 2^32 - 1. @internal */
export function checkMs(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff)) {
    throw new CatzillaError('CZ_SSE_FIELD', `SSE ${name} must be an integer from 0 to 4294967295 (ms)`)
  }
}

/**
 * Packs one event (or plain value) for the Rust SSE encoder (`catzilla_core::sse::encode_packed`),
 * the only place SSE is encoded: fields as tag, UTF-16 length, `:`, value; `.` ends the event.
 * Packing is not encoding: lines are split and fields validated in Rust.
 * @internal
 */
export function packSSE(value: unknown): string {
  if (!isEvent(value)) return field('d', text(value)) + '.'
  let out = ''
  if (value.comment !== undefined) out += field('c', String(value.comment))
  if (value.id !== undefined) out += field('i', String(value.id))
  if (value.event !== undefined) out += field('e', String(value.event))
  if (value.retry !== undefined) out += field('r', String(value.retry))
  if (value.data !== undefined) out += field('d', text(value.data))
  return out + '.'
}

/**
 * Encodes one event (or plain value) as SSE text, ending with the blank line that dispatches it,
 * with the same Rust encoder the server uses (data split on CRLF, CR and LF). Useful for writing
 * SSE through a writer function. Throws `CZ_SSE_FIELD` when `id` or `event` contains CR, LF or
 * NUL, or `retry` is not a non-negative integer.
 */
export function encodeSSE(value: unknown): string {
  try {
    return encodeSsePacked(packSSE(value))
  } catch (err) {
    throw fromNative(err)
  }
}

async function* withReplay(replay: AsyncIterable<unknown> | Iterable<unknown>, live: AsyncIterable<unknown> | Iterable<unknown>) {
  yield* replay as AsyncIterable<unknown>
  yield* live as AsyncIterable<unknown>
}

/**
 * A Server-Sent Events response: `text/event-stream`, no caching or proxy buffering, the head
 * sent at once, one event per item of `source`, heartbeats while idle.
 *
 * @example
 * app.get('/events', (req) => sse(async function* () {
 *   for await (const tick of ticks(req.signal)) yield { id: tick.n, event: 'tick', data: tick }
 * }(), { replay: (lastId) => history.after(lastId) }))
 */
export function sse(source: SSESource, options: SSEOptions = {}): StreamingResponse {
  const { retry, heartbeat = 15_000, replay, headers, ...rest } = options
  checkMs('retry', retry)
  checkMs('heartbeat', heartbeat)
  // A function source returns the events; wrapped so one that declares parameters is not taken
  // for a writer function (which would bypass the SSE encoder).
  const content = typeof source === 'function' ? () => source() : source
  return new StreamingResponse(
    content as StreamContent,
    {
      ...rest,
      contentType: 'text/event-stream; charset=utf-8',
      headers: { 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no', ...headers },
    },
    {
      pack: packSSE,
      immediate: true,
      prelude: retry !== undefined ? packSSE({ retry }) : undefined,
      heartbeatMs: heartbeat > 0 ? heartbeat : 0,
      wrap:
        replay === undefined
          ? undefined
          : (live, req) => (req.lastEventId === undefined ? live : withReplay(replay(req.lastEventId), live)),
    },
  )
}

/** `sse.topic(name, options)`: see {@link sseTopic}. */
sse.topic = sseTopic
