/** Streamed `multipart/form-data`: `req.parts()` yields one part at a time, parsed in Rust (multer). */
import { CatzillaError, HTTPError } from './errors.js'
import type { PartInfo, PartsStart } from './native.js'

/** What the multipart reader needs from the app. @internal */
export interface PartsHost {
  multipartStart(id: number): PartsStart
  multipartHead(id: number): PartInfo | null
  multipartNext(id: number): void
  multipartRead(id: number): void
}

type Waiter = { resolve: (v: PartInfo | Uint8Array | null) => void; reject: (e: unknown) => void }

/** Pulls part heads and chunks from Rust, one request at a time. @internal */
export class MultipartReader {
  #waiter: Waiter | undefined
  #error: unknown

  constructor(
    readonly host: PartsHost,
    readonly id: number,
  ) {}

  #ask(send: () => void): Promise<PartInfo | Uint8Array | null> {
    if (this.#error !== undefined) return Promise.reject(this.#error)
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject }
      send()
    })
  }

  /** The next part head, or `null` after the last part. */
  nextHead(): Promise<PartInfo | null> {
    return this.#ask(() => this.host.multipartNext(this.id)) as Promise<PartInfo | null>
  }

  /** The next chunk of the current part, or `null` at its end. */
  readChunk(): Promise<Uint8Array | null> {
    return this.#ask(() => this.host.multipartRead(this.id)) as Promise<Uint8Array | null>
  }

  /** A part started: its head is taken from Rust. */
  _partStart(): void {
    this._event(this.host.multipartHead(this.id))
  }

  /** An event from Rust: a head, a chunk, an end (`null`), or an error. */
  _event(value: PartInfo | Uint8Array | null, error?: unknown): void {
    const w = this.#waiter
    this.#waiter = undefined
    if (error !== undefined) {
      this.#error ??= error
      w?.reject(error)
    } else {
      w?.resolve(value)
    }
  }
}

/**
 * One part of a `multipart/form-data` body. Read its body before asking for the next part;
 * a part left unread is drained by Rust when the iteration moves on.
 */
export class Part {
  /** The field name. */
  readonly name: string
  /** The file name, for file uploads. */
  readonly filename: string | undefined
  /** The part's `Content-Type`, if sent. */
  readonly contentType: string | undefined
  /** The part's headers, lower-case names. */
  readonly headers: Record<string, string>
  #reader: MultipartReader
  #state: 'fresh' | 'reading' | 'done' = 'fresh'

  /** @internal */
  constructor(head: PartInfo, reader: MultipartReader) {
    this.name = head.name ?? ''
    this.filename = head.filename ?? undefined
    this.contentType = head.contentType ?? undefined
    // fromEntries defines own properties, so a part header named `__proto__` stays a header.
    this.headers = Object.fromEntries(head.headers.map(([k, v]) => [k!, v!]))
    this.#reader = reader
  }

  /** The part's body, streamed from Rust one chunk per pull. */
  get body(): AsyncIterable<Uint8Array> {
    if (this.#state !== 'fresh') throw new CatzillaError('CZ_BODY_USED', 'this part was already read or skipped')
    this.#state = 'reading'
    const reader = this.#reader
    return {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<Uint8Array>> => {
          if (this.#state === 'done') return { done: true, value: undefined }
          const chunk = await reader.readChunk()
          if (chunk === null) {
            this.#state = 'done'
            return { done: true, value: undefined }
          }
          return { done: false, value: chunk }
        },
      }),
    }
  }

  /** The whole part as bytes. */
  async bytes(): Promise<Uint8Array> {
    const chunks: Uint8Array[] = []
    for await (const c of this.body) chunks.push(c)
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
  }

  /** The whole part as UTF-8 text. */
  async text(): Promise<string> {
    const b = await this.bytes()
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8')
  }

  /** @internal The iteration moved on: the rest of this part is skipped. */
  _skip(): void {
    this.#state = 'done'
  }
}

/** Iterates the parts of a request whose multipart reader has started. @internal */
export async function* iterateParts(reader: MultipartReader): AsyncGenerator<Part, void, undefined> {
  for (;;) {
    const head = await reader.nextHead()
    if (head === null) return
    const part = new Part(head, reader)
    try {
      yield part
    } finally {
      part._skip()
    }
  }
}

/** The error for a request that is not multipart. @internal */
export function notMultipart(): HTTPError {
  return new HTTPError(415, 'Unsupported Media Type: expected multipart/form-data')
}
