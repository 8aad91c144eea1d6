/** Middleware composition: runs app and route middleware in onion order around a handler (Koa/Hono style). */
import type { Handler, Middleware } from './types.js'

/** Runs middleware in onion order around `handler`. */
export function compose(middleware: Middleware[], handler: Handler): Handler {
  if (middleware.length === 0) return handler
  return (req) => {
    const run = async (i: number): Promise<unknown> => {
      if (i === middleware.length) return handler(req)
      let inner: unknown
      let called = false
      const result = await middleware[i]!(req, async () => {
        if (called) throw new Error('next() called twice')
        called = true
        inner = await run(i + 1)
        return inner
      })
      return result === undefined && called ? inner : result
    }
    return run(0)
  }
}
