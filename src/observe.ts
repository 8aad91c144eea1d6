/** Operations: the access-log hook (`app.onResponse`) and the Prometheus metrics route's authorization. */
import type { LiveStream, ResponseInfo } from './native.js'

export type { LiveStream, ResponseInfo }

/** `app.onResponse` hook: called once per finished request, responses the core answered itself included. */
export type ResponseHook = (info: ResponseInfo) => void

/** Who may scrape `app.metrics(path, { auth })`: a bearer token, or a user name and password (HTTP Basic). */
export type MetricsAuth = { bearer: string } | { username: string; password: string }

/** Options of `app.metrics(path, options)`. */
export interface MetricsOptions {
  /** Require this `Authorization` on every scrape (401 otherwise). Default: none — put the route behind your network's access control instead. */
  auth?: MetricsAuth
}

/** The exact `Authorization` header value a scrape must carry. @internal */
export function authorization(auth: MetricsAuth | undefined): string | undefined {
  if (auth === undefined) return undefined
  if ('bearer' in auth) {
    if (typeof auth.bearer !== 'string' || !/^[\w\-.~+/]+=*$/.test(auth.bearer)) throw new TypeError('metrics auth.bearer must be a token (RFC 6750 b64token)')
    return `Bearer ${auth.bearer}`
  }
  const { username, password } = auth
  if (typeof username !== 'string' || typeof password !== 'string' || username.includes(':')) {
    throw new TypeError('metrics auth needs a username (without ":") and a password')
  }
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`
}

/**
 * Calls every hook for every exchange of a batch (one native callback per batch); a throwing hook
 * is reported and the others still run. @internal
 */
export function responseBatches(hooks: readonly ResponseHook[], report: (err: unknown) => void): (batch: ResponseInfo[]) => void {
  return (batch) => {
    for (const info of batch) {
      for (const hook of hooks) {
        try {
          hook(info)
        } catch (err) {
          report(err)
        }
      }
    }
  }
}
