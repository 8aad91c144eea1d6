/** Server-Sent Events: `sse(source, options)` encodes events per the HTML spec, with heartbeat and replay. */
import { CatzillaError } from './errors.js'
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
const LINE_BREAK = /\r\n|\r|\n/

function isEvent(v: unknown): v is SSEEvent {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const keys = Object.keys(v)
  return keys.length > 0 && keys.every((k) => EVENT_KEYS.has(k))
}

function checkField(name: string, value: string): string {
  if (/[\r\n\0]/.test(value)) {
    throw new CatzillaError('CZ_SSE_FIELD', `SSE ${name} must not contain CR, LF or NUL`)
  }
  return value
}

function dataLines(text: string): string {
  let out = ''
  for (const line of text.split(LINE_BREAK)) out += `data: ${line}\n`
  return out
}

/** Encodes one event (or plain value) as SSE text, ending with the blank line that dispatches it. */
export function encodeSSE(value: unknown): string {
  if (!isEvent(value)) {
    return dataLines(typeof value === 'string' ? value : (JSON.stringify(value) ?? 'null')) + '\n'
  }
  let out = ''
  if (value.comment !== undefined) for (const line of String(value.comment).split(LINE_BREAK)) out += `: ${line}\n`
  if (value.id !== undefined) out += `id: ${checkField('id', String(value.id))}\n`
  if (value.event !== undefined) out += `event: ${checkField('event', value.event)}\n`
  if (value.retry !== undefined) {
    if (!Number.isInteger(value.retry) || value.retry < 0) {
      throw new CatzillaError('CZ_SSE_FIELD', 'SSE retry must be a non-negative integer')
    }
    out += `retry: ${value.retry}\n`
  }
  if (value.data !== undefined) {
    out += dataLines(typeof value.data === 'string' ? value.data : (JSON.stringify(value.data) ?? 'null'))
  }
  return out + '\n'
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
  if (retry !== undefined && (!Number.isInteger(retry) || retry < 0)) {
    throw new CatzillaError('CZ_SSE_FIELD', 'SSE retry must be a non-negative integer')
  }
  return new StreamingResponse(
    source as StreamContent,
    {
      ...rest,
      contentType: 'text/event-stream; charset=utf-8',
      headers: { 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no', ...headers },
    },
    {
      encode: encodeSSE,
      immediate: true,
      prelude: retry !== undefined ? `retry: ${retry}\n\n` : undefined,
      heartbeat: heartbeat > 0 ? { ms: heartbeat, text: ':\n\n' } : undefined,
      wrap:
        replay === undefined
          ? undefined
          : (live, req) => (req.lastEventId === undefined ? live : withReplay(replay(req.lastEventId), live)),
    },
  )
}

/** `sse.topic(name, options)`: see {@link sseTopic}. */
sse.topic = sseTopic
