/** `app.dashboard(path, options)`: a live debug page (counters, throughput, live streams with a close button) served by the app itself over SSE. */
import { readFileSync } from 'node:fs'
import { timingSafeEqual } from 'node:crypto'
import type { Catzilla } from './app.js'
import { json } from './body.js'
import { HTTPError } from './errors.js'
import type { CatzillaRequest } from './request.js'
import { authorization } from './observe.js'
import { sse } from './sse.js'

/** Who may open the dashboard: a user name and password (HTTP Basic, the browser asks), or a function that decides per request. */
export type DashboardAuth = { username: string; password: string } | ((req: CatzillaRequest) => boolean | Promise<boolean>)

/** Options of `app.dashboard(path, options)`. */
export interface DashboardOptions {
  /** Required credentials. Default: none, and then only clients on the loopback interface (127.0.0.1, ::1) may open it: the page can close streams. */
  auth?: DashboardAuth
  /** How often the page is updated, in ms. Default 1000. */
  intervalMs?: number
}

const page = readFileSync(new URL('./dashboard/page.html', import.meta.url), 'utf8')

/** Header the page sends with its close requests; a cross-site form cannot set it (CSRF). */
const CSRF_HEADER = 'x-catzilla-dashboard'

function same(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

function loopback(ip: string): boolean {
  return ip === '127.0.0.1' || ip === '::1' || ip === '::ffff:127.0.0.1'
}

/** Middleware that refuses requests without the dashboard's credentials. */
function guard(auth: DashboardAuth | undefined) {
  const basic = auth !== undefined && typeof auth !== 'function' ? authorization(auth) : undefined
  return async (req: CatzillaRequest, next: () => Promise<unknown>) => {
    let ok: boolean
    if (auth === undefined) ok = loopback(req.ip)
    else if (typeof auth === 'function') ok = await auth(req)
    else ok = same(req.header('authorization') ?? '', basic!)
    if (!ok) {
      if (auth !== undefined && typeof auth !== 'function') {
        req.setHeader('www-authenticate', 'Basic realm="catzilla dashboard", charset="UTF-8"')
        throw new HTTPError(401, 'Unauthorized')
      }
      throw new HTTPError(403, 'Forbidden')
    }
    return next()
  }
}

/** Registers the dashboard routes on `app` under `path`. @internal */
export function mountDashboard(app: Catzilla, path: string, options: DashboardOptions): void {
  const base = path.endsWith('/') ? path.slice(0, -1) : path
  if (base === '' || !base.startsWith('/')) throw new TypeError('dashboard path must start with / and not be the root')
  const interval = options.intervalMs ?? 1000
  if (!(Number.isInteger(interval) && interval >= 100)) throw new RangeError('dashboard intervalMs must be an integer ≥ 100')
  if (options.auth !== undefined && typeof options.auth !== 'function') {
    const { username, password } = options.auth
    if (typeof username !== 'string' || typeof password !== 'string' || username.includes(':') || password === '') {
      throw new TypeError('dashboard auth needs a username (without ":") and a non-empty password')
    }
  }
  const check = guard(options.auth)
  const html = page.replaceAll('__BASE__', JSON.stringify(base)).replaceAll('__CSRF__', JSON.stringify(CSRF_HEADER))

  app.get(base, check, () => new Response(html, { headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:" } }))
  app.get(`${base}/events`, check, (req) =>
    sse(
      (async function* () {
        while (!req.signal.aborted && !req.closing.aborted) {
          // The dashboard's own event stream is left out of the table it shows.
          const streams = app.streams().filter((s) => !s.path.startsWith(`${base}/`))
          yield { event: 'tick', data: { time: Date.now(), stats: app.stats(), streams } }
          await new Promise((r) => setTimeout(r, interval))
        }
      })(),
      { compress: false },
    ),
  )
  app.post(`${base}/streams/:id/close`, check, (req) => {
    if (req.header(CSRF_HEADER) !== '1') throw new HTTPError(403, `missing ${CSRF_HEADER} header`)
    const id = Number(req.params.id)
    return json({ closed: Number.isSafeInteger(id) && app.closeStream(id) })
  })
}
