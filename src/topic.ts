/** `sse.topic(name)`: an SSE response fed by a Rust-side topic, so `app.publish` never enters JS per client. */
import { fromNative } from './errors.js'
import { checkMs } from './sse.js'
import { packHeaders } from './reply.js'
import type { ReplyHost } from './reply.js'
import type { CatzillaRequest } from './request.js'

/** Options of {@link sseTopic} (`sse.topic(name, options)`). */
export interface SSETopicOptions {
  /**
   * `true` (default): a reconnecting client's `Last-Event-ID` resumes from the topic's history;
   * if that history no longer reaches back far enough, a `cz-gap` event says so before the rest.
   * A number `n`: new clients (without `Last-Event-ID`) first get the last `n` messages.
   * `false`: live events only.
   */
  replay?: boolean | number
  /** Milliseconds of silence before a `:` comment keeps proxies open. Default 15 000; `0` disables. */
  heartbeat?: number
  /** Sent once at the start: the client's reconnection delay in ms. */
  retry?: number
  /**
   * Bytes this client may fall behind before it is disconnected (it reconnects and resumes from
   * history). Default 1 MiB: a stalled client never holds more than that.
   */
  maxBackpressure?: number
  /** Extra response headers. */
  headers?: Record<string, string>
}

/** The value a handler returns to subscribe the client to a topic. */
export class SSETopic {
  /** @internal */
  constructor(
    readonly topic: string,
    readonly options: SSETopicOptions,
  ) {}
}

/**
 * Subscribes this SSE client to `topic`: events published with `app.publish(topic, data)` (or
 * `ws.publish`) are encoded once in Rust and handed to every subscriber. Event ids are the
 * topic's sequence numbers.
 *
 * @example
 * app.get('/news', () => sse.topic('news', { replay: 20 }))
 * app.post('/news', async (req) => app.publish('news', await req.json()))
 */
export function sseTopic(topic: string, options: SSETopicOptions = {}): SSETopic {
  if (typeof topic !== 'string' || topic === '') throw new TypeError('sse.topic needs a topic name')
  const { retry, replay } = options
  checkMs('retry', retry)
  checkMs('heartbeat', options.heartbeat)
  if (typeof replay === 'number' && !(Number.isInteger(replay) && replay >= 0)) {
    throw new RangeError('sse.topic replay must be a boolean or a non-negative integer')
  }
  return new SSETopic(topic, options)
}

/** Answers `req` with the topic stream (one native call). @internal */
export function subscribeTopic(host: ReplyHost, req: CatzillaRequest, t: SSETopic): void {
  const o = t.options
  const headers = packHeaders(
    req,
    { 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no', ...o.headers },
    'text/event-stream; charset=utf-8',
  )
  let ok: boolean
  try {
    // `Last-Event-ID` is read in Rust from the request head it kept.
    ok = host.native.subscribeSse(req._id, t.topic, {
      headers,
      resume: o.replay !== false,
      recent: typeof o.replay === 'number' ? o.replay : 0,
      maxBackpressure: o.maxBackpressure ?? 1 << 20,
      heartbeatMs: o.heartbeat ?? 15_000,
      retryMs: o.retry,
    })
  } catch (err) {
    throw fromNative(err)
  }
  host.finish(req)
  req._finished(ok ? 200 : 0, 0, !ok)
}
