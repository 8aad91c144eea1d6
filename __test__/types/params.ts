/** Type tests (checked by `tsc --noEmit` in `npm test`): route params are typed from the pattern; `@ts-expect-error` lines must fail. */
import { Catzilla, json, text } from '../../index.js'
import type { CatzillaRequest, Middleware, RouteParams } from '../../index.js'

const app = new Catzilla()

app.get('/users/:id/posts/:postId', (req) => {
  const id: string = req.params.id
  const postId: string = req.params.postId
  // @ts-expect-error: the pattern has no `nope` parameter
  void req.params.nope
  return { id, postId }
})

app.get('/files/*', (req) => req.params['*'])
app.get('/assets/*path', (req) => req.params.path)
app.get('/plain', (req) => {
  // @ts-expect-error: a route without parameters has none
  void req.params.id
  return 'ok'
})

// Middleware written for any request keeps working in front of a typed handler.
const auth: Middleware = async (req, next) => (req.header('authorization') ? next() : text('no', { status: 401 }))
app.post('/rooms/:room', auth, (req) => json({ room: req.params.room }, { status: 201 }))

app.ws('/chat/:room', {
  upgrade: (req) => ({ name: req.params.room }),
  open: (ws) => {
    const room: string = ws.params.room
    const name: string = ws.data.name
    // @ts-expect-error: the WebSocket route has no `nope` parameter
    void ws.params.nope
    void room
    void name
  },
})

// A pattern only known at run time gives string-keyed params.
const dynamic: string = ['/a', ':x'].join('/')
app.get(dynamic, (req) => req.params.anything ?? '')

type Expect<T extends true> = T
type Equal<A, B> = (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false
export type Checks = [
  Expect<Equal<RouteParams<'/u/:id/:tab'>, { readonly id: string; readonly tab: string }>>,
  Expect<Equal<RouteParams<'/f/*'>, { readonly '*': string }>>,
  Expect<Equal<RouteParams<'/'>, {}>>,
  Expect<Equal<RouteParams<string>, Readonly<Record<string, string>>>>,
]

// A handler written against the base request type is accepted for any route.
const generic = (req: CatzillaRequest) => req.path
app.get('/g/:x', generic)

// Route options come first and keep the params typed.
app.post('/upload/:bucket', { maxBodySize: 1 << 30, timeouts: { body: 120_000 } }, auth, (req) => req.params.bucket)
app.get('/events/:room', { maxStreams: 100, timeouts: { streamLifetime: 3_600_000 } }, (req) => {
  // @ts-expect-error: the pattern has no `nope` parameter
  void req.params.nope
  return req.params.room
})
// @ts-expect-error: unknown route option
app.get('/typo', { maxBodySise: 1 }, () => 'x')
