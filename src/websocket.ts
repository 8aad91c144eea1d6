/** WebSockets: the `app.ws(path, behaviour)` behaviour type and the `WebSocket` handle JS code holds. */
import { fromNative } from './errors.js'
import type { NativeServer } from './native.js'
import type { CatzillaRequest } from './request.js'

/** What `ws.send` did: `sent` (queued under the limit), `queued` (over `maxBackpressure`: wait for `drain`), `dropped`. */
export type SendResult = 'sent' | 'queued' | 'dropped'

/** `SendStatus` of the native side, by value. @internal */
export const SEND_RESULTS: readonly SendResult[] = ['sent', 'queued', 'dropped']

/** permessage-deflate settings of a WebSocket route (`compression` in {@link WebSocketBehaviour}). */
export interface WebSocketCompression {
  /**
   * Keep the LZ77 window between messages in both directions: better ratios on similar messages,
   * at a compressor and decompressor per socket (measured in the README). Default `false`: every
   * message is compressed alone (`server_no_context_takeover` and `client_no_context_takeover`
   * are answered), compressors are pooled, and topic messages are compressed once per publish.
   */
  contextTakeover?: boolean
  /** Messages shorter than this many bytes are sent uncompressed. Default 1024 (as `ws`): smaller ones rarely shrink. */
  threshold?: number
  /** zlib level, 1 (fastest) to 9 (smallest). Default 6, zlib's and `ws`'s default. */
  level?: number
  /** With `contextTakeover`: largest window the server compresses with, 2^bits bytes (9–15). Default 15; 10 cuts the compressor to about a tenth. */
  serverMaxWindowBits?: number
  /** With `contextTakeover`: window (8–15) asked of clients that offer `client_max_window_bits`. Default 15. */
  clientMaxWindowBits?: number
}

/** Offline queue bounds of a route with `resume`. Memory across all sessions is also bounded by the app's `maxOfflineMemory`. */
export interface WebSocketResume {
  /** Milliseconds a disconnected session waits for its client; then `expired` fires. Default 120 000 (as socket.io's recovery). */
  ttl?: number
  /** Messages queued for a disconnected client at most; past it the oldest are dropped. Default 1000. */
  maxMessages?: number
  /** Bytes queued for a disconnected client at most; past it the oldest are dropped. Default 1 MiB. */
  maxBytes?: number
}

/** Data accepted by `send` and `publish`: strings go as text frames, bytes as binary, anything else as JSON text. */
export type WebSocketData = string | Uint8Array | ArrayBuffer | object

/**
 * Options and hooks of a WebSocket route.
 *
 * @example
 * app.ws('/chat/:room', {
 *   upgrade: (req) => ({ user: auth(req.header('sec-websocket-protocol')) }),
 *   open: (ws) => ws.subscribe(ws.params.room),
 *   message: (ws, data) => ws.publish(ws.params.room, data),
 * })
 */
export interface WebSocketBehaviour<T = unknown, P extends Readonly<Record<string, string>> = Readonly<Record<string, string>>> {
  /** Largest message accepted from a client, in bytes; bigger ones close the socket with 1009. Default 1 MiB. */
  maxPayload?: number
  /**
   * Milliseconds without any frame from the client before the socket is closed with 1001; a
   * ping is sent half-way, so a live client never hits it. Default 120 000; `0` disables.
   */
  idleTimeout?: number
  /**
   * Outbound bytes a socket may have queued. A `send` that crosses it answers `queued` (wait for
   * `drain`); sends while over it answer `dropped`. Default 1 MiB: one slow client costs at most
   * that much memory.
   */
  maxBackpressure?: number
  /** Close the socket (1008) instead of dropping messages once it is over `maxBackpressure`. Default `false`. */
  closeOnBackpressureLimit?: boolean
  /**
   * permessage-deflate (RFC 7692), negotiated with clients that offer it (every browser does).
   * Default `false`: compression costs CPU, and most small messages do not shrink. `true` takes
   * the defaults of {@link WebSocketCompression}: each message compressed alone, so a socket keeps
   * no compression state and a topic message is compressed once for all its subscribers.
   */
  compression?: boolean | WebSocketCompression
  /**
   * Session resume for clients that lose their connection (a phone changing networks, a laptop
   * waking up). Default off. Each socket gets a session: its first message is the text
   * `{"type":"cz-session","session":"<id>","recovered":false,"dropped":0}` (the id is also the
   * `x-catzilla-session` header of the 101). When a connection is lost (no close frame, or silence past `idleTimeout`) or the
   * client goes away (1001: a page closed or reloaded), the session stays subscribed to its topics and
   * queues what is published to them and what `app.sendTo(id)` sends. A client that reconnects
   * to the same route with `?cz_session=<id>` within `ttl` gets a new id in its first message
   * (`"recovered":true`), then the queued messages in order, then live ones, and `ws.recovered`
   * is `true`. `"dropped": n` > 0 says the queue overflowed and the oldest n were lost: resync.
   * A session is resumed once; messages the kernel had taken before the connection died are not
   * replayed. `true` takes the defaults of {@link WebSocketResume}.
   */
  resume?: boolean | WebSocketResume
  /**
   * Runs before the handshake is accepted. Throw an `HTTPError` to refuse with its status;
   * whatever it returns becomes `ws.data`. `req.setHeader()` adds handshake response headers; if
   * the client offered `Sec-WebSocket-Protocol` values and none was set here, the first is echoed
   * (browsers fail the connection otherwise, and auth tokens are commonly sent that way).
   */
  upgrade?: (req: CatzillaRequest<P>) => T | Promise<T>
  /** The socket is open. */
  open?: (ws: WebSocket<T, P>) => void
  /**
   * A message arrived: a `string` for text frames, a `Buffer` for binary frames. An async hook
   * (one that returns a promise) is awaited before the next message of this socket is delivered,
   * and the messages waiting for it count against the socket's 1 MiB inbound window, so a slow
   * handler pauses the reader (TCP backpressure) instead of piling up messages.
   */
  message?: (ws: WebSocket<T, P>, data: string | Buffer, isBinary: boolean) => void | PromiseLike<void>
  /** The outbound queue fell under half of `maxBackpressure` after a `queued` send. */
  drain?: (ws: WebSocket<T, P>) => void
  /**
   * The connection closed (1005: no code sent, 1006: connection lost). Fires exactly once per
   * connection; with `resume`, a session that waits for its client may open again later.
   */
  close?: (ws: WebSocket<T, P>, code: number, reason: string) => void
  /** With `resume`: the session of this closed socket was not resumed within `ttl` and is gone. */
  expired?: (ws: WebSocket<T, P>) => void
}

/** Checks a route's `resume` option and names it for the native side. @internal */
export function wsResume(r: boolean | WebSocketResume | undefined): WebSocketResume | undefined {
  if (r === undefined || r === false) return undefined
  if (r === true) return {}
  for (const [name, v] of Object.entries(r)) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) throw new RangeError(`ws resume.${name} must be a non-negative integer`)
  }
  return { ttl: r.ttl, maxMessages: r.maxMessages, maxBytes: r.maxBytes }
}

/** Checks a route's `compression` option and names it for the native side. @internal */
export function wsCompression(c: boolean | WebSocketCompression | undefined): WebSocketCompression | undefined {
  if (c === undefined || c === false) return undefined
  if (c === true) return {}
  const int = (v: number | undefined, name: string, lo: number, hi: number) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= lo && v <= hi)) throw new RangeError(`ws compression.${name} must be an integer from ${lo} to ${hi}`)
    return v
  }
  return {
    contextTakeover: c.contextTakeover,
    threshold: int(c.threshold, 'threshold', 0, 2 ** 32 - 1),
    level: int(c.level, 'level', 1, 9),
    serverMaxWindowBits: int(c.serverMaxWindowBits, 'serverMaxWindowBits', 9, 15),
    clientMaxWindowBits: int(c.clientMaxWindowBits, 'clientMaxWindowBits', 8, 15),
  }
}

/** Publishes through the native fan-out (which validates `event`), skipping socket `exclude` (0: none). @internal */
export function publishTo(native: NativeServer, topic: string, data: WebSocketData, event: string | undefined, exclude: number): number {
  const wire = toWire(data)
  try {
    return typeof wire === 'string'
      ? native.publishText(topic, wire, event ?? null, exclude)
      : native.publishBinary(topic, wire, event ?? null, exclude)
  } catch (err) {
    throw fromNative(err)
  }
}

/** Hands data to the native side as text or bytes. @internal */
export function toWire(data: WebSocketData): string | Buffer {
  if (typeof data === 'string') return data
  if (Buffer.isBuffer(data)) return data
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  return JSON.stringify(data)
}

/** One WebSocket connection. Methods are synchronous: messages are queued in Rust, bounded per socket. */
export class WebSocket<T = unknown, P extends Readonly<Record<string, string>> = Readonly<Record<string, string>>> {
  /** Per-server unique id of this socket. */
  readonly id: number
  /** What the route's `upgrade` hook returned. */
  readonly data: T
  /** Path parameters of the route. */
  readonly params: P
  /** `true` when this connection resumed a disconnected session (routes with `resume`). */
  readonly recovered: boolean
  /** The session id the client reconnects with (`?cz_session=<id>`); `undefined` without `resume`. */
  readonly sessionId: string | undefined
  /** @internal Hooks are called with this socket; kept untyped in `P` so a socket of a typed route is still a `WebSocket<T>`. */ readonly _behaviour: WebSocketBehaviour<T>
  #native: NativeServer
  #closed = false
  /** An async `message` hook is running: later messages wait here, in order. */
  #busy = false
  #inbox: Array<() => PromiseLike<unknown> | undefined> = []

  /** @internal */
  constructor(native: NativeServer, id: number, data: T, params: P, behaviour: WebSocketBehaviour<T, P>, session?: { session?: string | null; recovered: boolean }) {
    this.#native = native
    this.id = id
    this.sessionId = session?.session ?? undefined
    this.recovered = session?.recovered ?? false
    this.data = data
    this.params = params
    this._behaviour = behaviour as unknown as WebSocketBehaviour<T>
  }

  /** Queues a message. Returns `dropped` once the socket is closed or over its backpressure limit. */
  send(data: WebSocketData): SendResult {
    if (this.#closed) return 'dropped'
    const wire = toWire(data)
    const r = typeof wire === 'string' ? this.#native.wsSendText(this.id, wire) : this.#native.wsSendBinary(this.id, wire)
    return SEND_RESULTS[r] ?? 'dropped'
  }

  /** Starts the close handshake after the queued messages (code default 1000). */
  close(code = 1000, reason = ''): void {
    if (this.#closed) return
    if (!Number.isInteger(code) || code < 1000 || code > 4999 || code === 1005 || code === 1006) {
      throw new RangeError(`invalid WebSocket close code ${code}`)
    }
    this.#native.wsClose(this.id, code, reason)
  }

  /** Subscribes this socket to `topic`; `app.publish(topic)` then reaches it from Rust. Returns `false` if it already was. */
  subscribe(topic: string): boolean {
    return !this.#closed && this.#native.wsSubscribe(this.id, topic)
  }

  /** Leaves `topic`; returns `false` if it was not subscribed. */
  unsubscribe(topic: string): boolean {
    return !this.#closed && this.#native.wsUnsubscribe(this.id, topic)
  }

  /** Topics this socket is subscribed to. */
  get topics(): string[] {
    return this.#closed ? [] : this.#native.wsTopics(this.id)
  }

  /**
   * Publishes to every subscriber of `topic` except this socket; returns how many it reached.
   * Throws `CZ_SSE_FIELD` (and sends nothing) when `options.event` contains CR, LF or NUL.
   */
  publish(topic: string, data: WebSocketData, options: { event?: string } = {}): number {
    return publishTo(this.#native, topic, data, options.event, this.id)
  }

  /** Outbound bytes queued and not yet written to the socket. */
  get bufferedAmount(): number {
    return this.#closed ? 0 : this.#native.wsBuffered(this.id)
  }

  /** `true` once the socket has closed. */
  get closed(): boolean {
    return this.#closed
  }

  /** @internal */
  _markClosed(): void {
    this.#closed = true
  }

  /**
   * Delivers one message by running `run` (the `message` hook): at once, unless an async hook is
   * still running, then after it, in order. Returns `true` when the message was deferred (Rust
   * keeps it counted against the socket's inbound window until `wsConsumed`), so an async
   * handler slows the reader the way a sync one does. @internal
   */
  _inbound(run: () => PromiseLike<unknown> | undefined): true | undefined {
    if (this.#busy) {
      this.#inbox.push(run)
      return true
    }
    const pending = run()
    if (pending === undefined) return undefined
    this.#busy = true
    pending.then(() => this.#next())
    return true
  }

  /** The running hook finished: its message is consumed; run the queued ones. */
  #next(): void {
    this.#native.wsConsumed(this.id)
    for (let run = this.#inbox.shift(); run !== undefined; run = this.#inbox.shift()) {
      const pending = run()
      if (pending !== undefined) {
        pending.then(() => this.#next())
        return
      }
      this.#native.wsConsumed(this.id)
    }
    this.#busy = false
  }
}
