/** Whole-body response helpers: `json(data, init)` and `text(body, init)` with a status and headers, sent with `Content-Length`. */
import type { HeaderInput } from './reply.js'

/** Status and headers of {@link json} and {@link text}. */
export interface BodyInit {
  /** Status code. Default 200. */
  status?: number
  /** Extra response headers; a `content-type` here wins over the helper's. */
  headers?: HeaderInput
}

/** A complete body with its status and headers; what {@link json} and {@link text} return. */
export class BodyResponse {
  /** @internal */
  constructor(
    readonly body: string,
    readonly contentType: string,
    readonly status: number,
    readonly headers: HeaderInput | undefined,
  ) {
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`status must be 200-599, got ${status}`)
  }
}

/**
 * A JSON response with a status and headers, sent whole with `Content-Length`.
 *
 * @example
 * app.post('/users', async (req) => json(await create(await req.json()), { status: 201, headers: { location: '/users/7' } }))
 */
export function json(data: unknown, init: BodyInit = {}): BodyResponse {
  const body = JSON.stringify(data)
  if (body === undefined) throw new TypeError(`json() cannot encode ${typeof data}`)
  return new BodyResponse(body, 'application/json', init.status ?? 200, init.headers)
}

/**
 * A `text/plain; charset=utf-8` response with a status and headers, sent whole with `Content-Length`.
 *
 * @example
 * app.get('/health', () => text('starting', { status: 503, headers: { 'retry-after': '5' } }))
 */
export function text(body: string, init: BodyInit = {}): BodyResponse {
  return new BodyResponse(String(body), 'text/plain; charset=utf-8', init.status ?? 200, init.headers)
}
