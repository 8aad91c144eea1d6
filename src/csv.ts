/** CSV streams (RFC 4180): rows as arrays or objects, quoted where needed, CRLF line ends. */
import { CatzillaError } from './errors.js'
import { StreamingResponse } from './streaming.js'
import type { StreamContent, StreamingOptions } from './streaming.js'

/** Options of {@link csv}. */
export interface CSVOptions extends Omit<StreamingOptions, 'contentType'> {
  /**
   * Header row: column names (objects are read in this order), `true` to take the first object's
   * keys, or `false` for none. Default: the first object's keys when rows are objects, none for arrays.
   */
  header?: readonly string[] | boolean
  /** Field delimiter, one character. Default `,`. */
  delimiter?: string
  /** Offers the response as a download with this file name (`Content-Disposition: attachment`). */
  filename?: string
}

function field(value: unknown, delimiter: string): string {
  let s: string
  if (value === null || value === undefined) return ''
  if (value instanceof Date) s = value.toISOString()
  else if (typeof value === 'object') s = JSON.stringify(value)
  else s = String(value)
  if (s.includes(delimiter) || s.includes('"') || s.includes('\n') || s.includes('\r')) {
    return `"${s.replace(/"/g, '""')}"`
  }
  return s
}

function disposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_')
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`
}

/**
 * Streams rows as CSV (`text/csv; charset=utf-8`).
 *
 * @example
 * app.get('/report.csv', () => csv(db.rows(), { filename: 'report.csv' }))
 */
export function csv(
  source: AsyncIterable<unknown> | Iterable<unknown> | (() => AsyncIterable<unknown> | Iterable<unknown>),
  options: CSVOptions = {},
): StreamingResponse {
  const { header, delimiter = ',', filename, headers, ...rest } = options
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\r' || delimiter === '\n') {
    throw new CatzillaError('CZ_BAD_CHUNK', 'csv delimiter must be one character other than a quote, CR or LF')
  }
  let columns: readonly string[] | undefined = Array.isArray(header) ? header : undefined
  let first = true
  const line = (values: readonly unknown[]) => values.map((v) => field(v, delimiter)).join(delimiter) + '\r\n'
  const encode = (row: unknown): string => {
    let out = ''
    const isObject = row !== null && typeof row === 'object' && !Array.isArray(row)
    if (first) {
      first = false
      if (columns === undefined && isObject && header !== false) columns = Object.keys(row as object)
      if (columns !== undefined && header !== false) out += line(columns)
    }
    if (Array.isArray(row)) return out + line(row)
    if (isObject) {
      const r = row as Record<string, unknown>
      return out + line(columns !== undefined ? columns.map((c) => r[c]) : Object.values(r))
    }
    throw new CatzillaError('CZ_BAD_CHUNK', 'csv rows must be arrays or objects')
  }
  const extra: Record<string, string> = { ...headers }
  if (filename !== undefined) extra['content-disposition'] = disposition(filename)
  return new StreamingResponse(source as StreamContent, { ...rest, contentType: 'text/csv; charset=utf-8', headers: extra }, { encode })
}
