// Type-checks the published declarations with `tsc --noEmit --strict` in a project that installed catzilla.
import { Catzilla, CatzillaError, file, HTTPError, sse, StreamingResponse } from 'catzilla'
import type { AppOptions, SSEEvent, ServerStats, WebSocketBehaviour } from 'catzilla'

const options: AppOptions = { bufferSize: 64 * 1024, limits: { maxBodySize: 1 << 20, maxHeaders: 100 } }
const app = new Catzilla(options)
app.get('/users/:id', (req) => ({ id: req.params.id }))
app.get('/file/:name', (req) => file(req.params.name, { root: './files' }))
app.get('/events', () => sse([{ id: 1, data: 'x' } satisfies SSEEvent]))
app.get('/stream', () => new StreamingResponse(async (w) => void (await w.write('hi'))))
app.get('/teapot', () => {
  throw new HTTPError(418)
})
const chat: WebSocketBehaviour<{ name: string }> = { upgrade: () => ({ name: 'a' }), message: (ws, data) => void ws.send(data) }
app.ws('/chat', chat)
const stats: ServerStats = app.stats()
const requests: number = stats.requestsTotal
const code: string = new CatzillaError('CZ_ROUTE', 'x').code
export { requests, code }
