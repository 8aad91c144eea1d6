/** `file(path)`: a file sent by Rust (Range, ETag, 304), never copied through JS. */
import { fromNative } from './errors.js'
import { appendPacked, packHeaders } from './reply.js'
import type { HeaderInput, ReplyHost } from './reply.js'
import type { FileSent } from './native.js'
import type { CatzillaRequest } from './request.js'

/** Options of {@link file}. */
export interface FileOptions {
  /**
   * Confine the file to this directory: a relative `path` is resolved against `root`, and the
   * file actually opened (after `..`, symlinks and all) must resolve inside it, or the answer is
   * 404. Use it whenever any part of the path comes from the request: route params are
   * percent-decoded, so `/download/..%2F..%2Fetc%2Fpasswd` gives `name = '../../etc/passwd'`.
   * Default: none (the path is trusted as given).
   */
  root?: string
  /** With `root`: serve names starting with `.` (e.g. `.env`). Default `false` (404). */
  dotfiles?: boolean
  /** `Content-Type`; default: guessed from the extension (`application/octet-stream` if unknown). */
  contentType?: string
  /** Offer the file as a download with this name (`Content-Disposition: attachment`). */
  filename?: string
  /** Extra response headers, e.g. `Cache-Control`. */
  headers?: HeaderInput
}

/** The value a handler returns to send a file. */
export class FileResponse {
  /** @internal */
  constructor(
    readonly path: string,
    readonly options: FileOptions,
  ) {}
}

/**
 * Sends the file at `path` from Rust: `ETag` and `Last-Modified`, `304` for `If-None-Match` /
 * `If-Modified-Since`, single byte ranges (`206`, `416` with `Content-Range: bytes *\/size`,
 * `If-Range`), `404`/`403` when it cannot be opened. Small files are read in one go; large ones
 * are streamed in 64 KiB reads, so a slow client holds one chunk.
 *
 * @example
 * app.get('/report', () => file('./data/report.pdf', { filename: 'report.pdf' }))
 * // A user-named file: always with `root`.
 * app.get('/download/:name', (req) => file(req.params.name, { root: './files' }))
 */
export function file(path: string, options: FileOptions = {}): FileResponse {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) throw new TypeError('file() needs a path')
  if (options.root !== undefined && (typeof options.root !== 'string' || options.root === '' || options.root.includes('\0'))) {
    throw new TypeError('file() root must be a directory path')
  }
  return new FileResponse(path, options)
}

/** RFC 6266 `Content-Disposition` for a download name. */
function disposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_')
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`
}

/** Answers `req` with the file (one native call; the status arrives when Rust has decided it). @internal */
export function sendFile(host: ReplyHost, req: CatzillaRequest, f: FileResponse): Promise<void> {
  const o = f.options
  let headers = packHeaders(req, o.headers)
  // The disposition is pure printable ASCII (see `disposition`), so it needs no NUL check.
  if (o.filename !== undefined) headers = appendPacked(headers, 'content-disposition', disposition(o.filename))
  // Range and If-* are read in Rust from the request head it kept: only the id crosses.
  let pending: Promise<FileSent>
  try {
    pending = host.native.sendFile(req._id, f.path, { root: o.root, dotfiles: o.dotfiles, headers, contentType: o.contentType })
  } catch (err) {
    throw fromNative(err)
  }
  host.finish(req)
  return pending.then(
    ({ status, bytes }) => req._finished(status, bytes, status === 0),
    (err) => {
      throw fromNative(err)
    },
  )
}
