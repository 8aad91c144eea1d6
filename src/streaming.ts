/** Streamed responses: `StreamingResponse`, `StreamingWriter`, and the pull-based pump into the Rust ring. */
import { CatzillaError, fromNative, StreamClosedError } from './errors.js'
import { NativeStream, Write } from './native.js'
import type { StreamCloseInfo, StreamOptions } from './native.js'

/** A chunk a stream may carry. */
export type Chunk = string | Uint8Array

/** How a stream ended, passed to `onClose`. */
export interface CloseInfo {
  /** Body bytes handed to the socket. */
  bytes: number
  /** Chunks written. */
  chunks: number
  /** Milliseconds from the first byte to the close. */
  duration: number
  /** `true` when the client left (or the server cut the connection) before the end. */
  aborted: boolean
}

/** Writer function given a {@link StreamingWriter}. */
export type WriterFunction = (writer: StreamingWriter) => unknown

/** What a `StreamingResponse` can stream. */
export type StreamContent =
  | AsyncIterable<Chunk>
  | Iterable<Chunk>
  | (() => AsyncIterable<Chunk> | Iterable<Chunk>)
  | WriterFunction
  | ReadableStream<Chunk>

/**
 * How a typed stream (`sse`, `ndjson`, `csv`) encodes its items. @internal
 */
export interface StreamFormat {
  /** Turns one source item into text. */
  encode?: (item: unknown) => string
  /**
   * Turns one source item into a packed SSE event; the batch is encoded in Rust by the one SSE
   * encoder (`NativeStream.writeSse`). Exclusive with `encode`.
   */
  pack?: (item: unknown) => string
  /** Item sent right after the head, in the format's own form (e.g. a packed SSE `retry:`). */
  prelude?: string
  /** Send the head before the first item is pulled (SSE: the client's `open` fires at once). */
  immediate?: boolean
  /** SSE only: Rust sends a heartbeat comment after this many ms without output (0: never). */
  heartbeatMs?: number
  /** Wraps the source once the request is known (e.g. SSE replay before the live source). */
  wrap?: (source: AsyncIterable<unknown> | Iterable<unknown>, req: { lastEventId: string | undefined }) => AsyncIterable<unknown> | Iterable<unknown>
}

/** Options of {@link StreamingResponse}. */
export interface StreamingOptions {
  /** Content type. Default `application/octet-stream`. */
  contentType?: string
  /** Status code. Default 200. */
  status?: number
  /** Extra headers. */
  headers?: Record<string, string>
  /** Ring size for this response in bytes. Default: the app's `bufferSize` (512 KiB). */
  bufferSize?: number
  /**
   * Compress this stream when the client accepts it: `false` never, `true` even when the app's
   * `compression` is off. Default: the app setting. Every chunk is flushed through the
   * compressor as it is sent, so nothing waits for more data.
   */
  compress?: boolean
  /** Called once when the stream is over, with bytes, chunks, duration and whether it was aborted. */
  onClose?: (info: CloseInfo) => void
  /** Called when the producer fails after the first byte (the connection is then cut). */
  onError?: (err: unknown) => void
}

/**
 * A streamed response with explicit options.
 *
 * @example
 * return new StreamingResponse(async function* () { yield 'a'; yield 'b' }, { contentType: 'text/plain' })
 * @example
 * return new StreamingResponse(async (w) => { await w.write('hello'); await w.close() })
 */
export class StreamingResponse {
  /** What is streamed. */
  readonly content: StreamContent
  /** Status, headers and hooks; middleware may still change them before the first byte. */
  readonly options: StreamingOptions
  /** @internal Encoding of typed streams. */
  readonly format: StreamFormat | undefined

  constructor(content: StreamContent, options: StreamingOptions = {}, format?: StreamFormat) {
    this.content = content
    this.options = { ...options, headers: { ...options.headers } }
    this.format = format
  }
}

/** The app-side hooks a sink needs. */
export interface SinkHost {
  startStream(id: number, status: number, headers: string, options: StreamOptions): NativeStream | null
  registerSink(id: number, sink: StreamSink): void
  reportError(err: unknown): void
}

type Waiter = () => void

/**
 * Text chunks are joined in JS up to this many characters before one native write. Measured on
 * 1,000,000 SSE events of ~60 B (one core): ~2.5 M events/s batched vs ~1.05 M with one native
 * `writeText` per event.
 */
const TEXT_BATCH = 16 * 1024

/** Sinks written during this tick; flushed together once the tick's synchronous work is done. */
let dirty: StreamSink[] = []
let flushScheduled = false

function flushDirty(): void {
  flushScheduled = false
  const list = dirty
  dirty = []
  for (const sink of list) sink._flush()
}

/**
 * One response stream on the JS side: wraps the native ring handle, parks the producer while the
 * ring is full, and settles every wait on drain *or* close.
 * @internal
 */
export class StreamSink {
  native: NativeStream | null = null
  closed = false
  /** Chunks the producer wrote. */
  chunks = 0
  #dirty = false
  #blocked = false
  /** A batch was refused by the encoder: the stream was aborted and the error reported. */
  #failed = false
  #text = ''
  /** `#text` holds packed SSE events (flushed with `writeSse`) instead of plain text. */
  #sse = false
  /**
   * Chunks the ring refused while the client's socket was full, in order: held by reference (not
   * copied) and written again on the next drain. Later writes queue behind them.
   */
  #held: Array<Buffer | string> = []
  /** `end()` came while chunks were held: the native end follows the last of them. */
  #endHeld = false
  #waiters: Waiter[] = []
  #onClosed: Array<(aborted: boolean) => void> = []
  /** Set by the responder to send an encoder error to the app's `onError` with its request. */
  reportError: ((err: unknown) => void) | undefined
  /** Set by the responder to report the end to `req.onFinish` listeners. */
  onCloseInfo: ((info: CloseInfo) => void) | undefined
  #closeInfo: CloseInfo | undefined

  constructor(
    readonly id: number,
    readonly options: StreamingOptions,
  ) {}

  /** Sends the head; `false` when the client is already gone. */
  start(host: SinkHost, status: number, headers: string, format?: StreamFormat): boolean {
    this.#sse = format?.pack !== undefined
    const native = host.startStream(this.id, status, headers, {
      bufferSize: this.options.bufferSize,
      sseHeartbeatMs: format?.heartbeatMs,
      compress: this.options.compress,
    })
    if (native === null) {
      this.closed = true
      return false
    }
    this.native = native
    host.registerSink(this.id, this)
    return true
  }

  /**
   * Copies one chunk into the ring; returns a `Write` code. The socket task is woken once per
   * tick (or at once when the ring fills), so a burst of small writes leaves in one frame. While
   * the client's socket is full the chunk is held by reference instead (`Full` is returned) and
   * written on the next drain: a stalled client pins the producer's chunk, not a copy as well.
   */
  write(chunk: unknown): number {
    const n = this.native
    if (n === null || this.closed || this.#failed) return Write.Closed
    if (typeof chunk === 'string') {
      // Small text is joined in JS: one native call per batch instead of one per event.
      this.chunks++
      this.#text += chunk
      if (this.#text.length < TEXT_BATCH) {
        this.#markDirty()
        return this.#blocked ? Write.Full : Write.Ready
      }
      return this.#writeText()
    }
    if (!(chunk instanceof Uint8Array)) throw badChunk(chunk)
    this.chunks++
    if (this.#text !== '' && this.#writeText() === Write.Closed) return Write.Closed
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    if (this.#held.length > 0) {
      this.#held.push(bytes)
      return Write.Full
    }
    return this.#after(n.write(bytes), bytes)
  }

  /** Hands the JS batch to Rust. `report: false` when the stream is being aborted for another error anyway. */
  #writeText(report = true): number {
    const text = this.#text
    this.#text = ''
    if (this.#held.length > 0) {
      this.#held.push(text)
      return Write.Full
    }
    return this.#after(this.#nativeText(text, report), text)
  }

  /** One native text write: plain, or packed SSE events encoded in Rust. */
  #nativeText(text: string, report: boolean): number {
    if (!this.#sse) return this.native!.writeText(text)
    try {
      return this.native!.writeSse(text)
    } catch (err) {
      // An invalid SSE field (`CZ_SSE_FIELD`): the events before it were written; the stream is
      // cut as for any error after the first byte, and the error goes to onError.
      this.#fail(fromNative(err), report)
      return Write.Closed
    }
  }

  /**
   * Writes the held chunks in order; `false` while the ring refuses one again or is full (the
   * rest wait for the next drain).
   */
  #writeHeld(): boolean {
    const n = this.native!
    while (this.#held.length > 0) {
      const chunk = this.#held[0]!
      const status = typeof chunk === 'string' ? this.#nativeText(chunk, true) : n.write(chunk)
      if (status === Write.Refused) return false
      this.#held.shift()
      if (status === Write.Closed) {
        this.#held = []
        this.#endHeld = false
        return true
      }
      this.#markDirty()
      if (this.#held.length === 0 && this.#endHeld) {
        this.#endHeld = false
        n.end()
      }
      if (status === Write.Full) return false
    }
    return true
  }

  #fail(err: unknown, report: boolean): void {
    this.#failed = true
    this.native?.abort()
    if (!report) return
    this.reportError?.(err)
    try {
      this.options.onError?.(err)
    } catch {
      /* a failing onError must not break the stream's cleanup */
    }
  }

  #after(status: number, chunk: Buffer | string): number {
    if (status === Write.Refused) {
      this.#held.push(chunk)
      status = Write.Full
    }
    if (status === Write.Full) this.#blocked = true
    else if (status === Write.Ready) this.#markDirty()
    return status === Write.Ready && this.#blocked ? Write.Full : status
  }

  #markDirty(): void {
    if (this.#dirty) return
    this.#dirty = true
    dirty.push(this)
    if (!flushScheduled) {
      flushScheduled = true
      setImmediate(flushDirty)
    }
  }

  /** Hands buffered bytes (JS text batch included) to the socket now. */
  _flush(): void {
    this.#dirty = false
    if (this.closed || this.native === null || this.#failed) return
    if (this.#text !== '') this.#writeText()
    this.native.flush()
  }

  /** Resolves when the ring drained below its low-water mark, or the stream closed. */
  waitDrain(): Promise<void> {
    if (this.closed || !this.#blocked) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** Registers a callback for the close (runs at once if already closed). */
  onClosed(fn: (aborted: boolean) => void): void {
    if (this.#closeInfo) fn(this.#closeInfo.aborted)
    else this.#onClosed.push(fn)
  }

  get bufferedAmount(): number {
    if (this.native === null || this.closed) return 0
    let held = 0
    for (const c of this.#held) held += typeof c === 'string' ? Buffer.byteLength(c) : c.length
    return this.native.buffered + Buffer.byteLength(this.#text) + held
  }

  end(): void {
    if (this.#text !== '' && !this.closed && !this.#failed) this.#writeText()
    if (this.#failed) return
    if (this.#held.length > 0) this.#endHeld = true
    else this.native?.end()
  }

  /**
   * Sends what the ring holds, then cuts the connection without the terminating chunk. Chunks
   * held for a full socket are dropped: the client gets a truncated body either way.
   */
  abort(): void {
    if (this.#text !== '' && !this.closed && !this.#failed) this.#writeText(false)
    this.#held = []
    this.#endHeld = false
    this.native?.abort()
  }

  /** `true` when the encoder refused a batch (the error was already reported). */
  get failed(): boolean {
    return this.#failed
  }

  /** @internal The ring drained. */
  _drained(): void {
    if ((this.#held.length > 0 || this.#endHeld) && !this.closed && !this.#failed && !this.#writeHeld()) return
    this.#blocked = false
    const w = this.#waiters
    this.#waiters = []
    for (const f of w) f()
  }

  /** @internal The stream is over. */
  _closed(aborted: boolean): void {
    if (this.#closeInfo) return
    this.closed = true
    const native: StreamCloseInfo | null | undefined = this.native?.closeInfo()
    this.#closeInfo = { bytes: native?.bytes ?? 0, chunks: this.chunks, duration: native?.duration ?? 0, aborted }
    this.#text = ''
    this.#held = []
    this.#endHeld = false
    this._drained()
    for (const f of this.#onClosed) f(aborted)
    this.onCloseInfo?.(this.#closeInfo)
    this.#onClosed = []
    if (this.options.onClose) {
      try {
        this.options.onClose(this.#closeInfo)
      } catch {
        /* a failing onClose must not break the dispatcher */
      }
    }
  }
}

/** The `CZ_BAD_CHUNK` error for a stream item that is neither a string nor bytes; `where` says where it came from. @internal */
export function badChunk(v: unknown, where = ''): CatzillaError {
  const hint = v instanceof Promise ? ' (a sync generator yielded a Promise: use an async generator)' : ''
  return new CatzillaError('CZ_BAD_CHUNK', `stream chunks must be strings or Uint8Arrays, got ${typeName(v)}${where}${hint}`)
}

/** Names a value's type for error messages (`Map`, `Promise`, `object`, ...). @internal */
export function typeName(v: unknown): string {
  if (v === null) return 'null'
  if (typeof v !== 'object') return typeof v
  const name = (v as { constructor?: { name?: unknown } }).constructor?.name
  // Generators have no named constructor; their tag says `Generator`.
  return typeof name === 'string' && name !== '' ? name : Object.prototype.toString.call(v).slice(8, -1)
}

/**
 * The file-like writer given to writer functions. `write` copies synchronously while the ring has
 * room and returns a Promise only when it is full; that Promise settles on drain or close.
 */
export class StreamingWriter {
  #sink: StreamSink
  #start: () => boolean
  #started = false
  #ended = false
  #signal: AbortSignal

  /** @internal */
  constructor(sink: StreamSink, start: () => boolean, signal: AbortSignal) {
    this.#sink = sink
    this.#start = start
    this.#signal = signal
  }

  /** @internal */
  get started(): boolean {
    return this.#started
  }

  #ensureStarted(): boolean {
    if (!this.#started) {
      const ok = this.#start() // may throw (bad header): then nothing started and the caller answers 500
      this.#started = true
      if (!ok) return false
    }
    return !this.#sink.closed && !this.#ended
  }

  /**
   * Writes a chunk. Returns `undefined` while the ring has room, a Promise when it is full.
   * Rejects with `StreamClosedError` (`CZ_STREAM_CLOSED`) once the client is gone.
   *
   * A chunk that returned `undefined` was copied and the buffer may be reused at once. One that
   * returned a Promise may be held by reference while the client's socket is full (as Node's
   * `writable.write` holds its chunks): do not modify that buffer until the Promise settles.
   */
  write(chunk: Chunk): Promise<void> | undefined {
    if (!this.#ensureStarted()) return Promise.reject(new StreamClosedError())
    let status: number
    try {
      status = this.#sink.write(chunk)
    } catch (err) {
      return Promise.reject(err)
    }
    if (status === Write.Ready) return undefined
    if (status === Write.Full) return this.#sink.waitDrain()
    return Promise.reject(new StreamClosedError())
  }

  /** Writes a chunk followed by `\n`. */
  writeln(chunk: Chunk = ''): Promise<void> | undefined {
    if (typeof chunk === 'string') return this.write(chunk + '\n')
    const r = this.write(chunk)
    return r === undefined ? this.write('\n') : r.then(() => this.write('\n'))
  }

  /** Sends the head if not yet sent and hands buffered bytes to the socket now. */
  async flush(): Promise<void> {
    if (!this.#ensureStarted() && this.#sink.closed) throw new StreamClosedError()
    this.#sink._flush()
  }

  /** Ends the stream after the buffered bytes. */
  async close(): Promise<void> {
    if (this.#ended) return
    this.#ensureStarted()
    this.#ended = true
    this.#sink.end()
  }

  /** Aborts the stream: the client sees a truncated body (no terminating chunk). */
  abort(err?: unknown): void {
    if (this.#ended) return
    this.#ensureStarted()
    this.#ended = true
    this.#sink.abort()
    if (err !== undefined) this.#sink.options.onError?.(err)
  }

  /** `true` once the stream is closed or ended. */
  get closed(): boolean {
    return this.#ended || this.#sink.closed
  }

  /** Bytes written and not yet handed to the socket: in the ring, or held while the client's socket is full. */
  get bufferedAmount(): number {
    return this.#sink.bufferedAmount
  }

  /** Aborts when the client goes away. */
  get signal(): AbortSignal {
    return this.#signal
  }

  /** `await using w = ...` closes the stream at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
