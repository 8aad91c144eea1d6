/** Type tests (checked by `tsc --noEmit` in `npm test`): WebSocket compression and resume options, hooks and results; `@ts-expect-error` lines must fail. */
import { Catzilla } from '../../index.js'
import type { SendResult, WebSocketCompression, WebSocketResume } from '../../index.js'

const app = new Catzilla({ maxOfflineMemory: 32 << 20 })

const compression: WebSocketCompression = { contextTakeover: true, threshold: 512, level: 3, serverMaxWindowBits: 12, clientMaxWindowBits: 12 }
const resume: WebSocketResume = { ttl: 60_000, maxMessages: 500, maxBytes: 1 << 20 }

app.ws('/chat/:room', {
  compression,
  resume,
  upgrade: () => ({ user: 'u' }),
  open: (ws) => {
    const session: string | undefined = ws.sessionId
    const recovered: boolean = ws.recovered
    void session
    void recovered
  },
  expired: (ws) => {
    const user: string = ws.data.user
    const room: string = ws.params.room
    void user
    void room
  },
})
app.ws('/feed', { compression: true, resume: true })
// @ts-expect-error: compression is a boolean or an options object
app.ws('/bad', { compression: 'gzip' })
// @ts-expect-error: resume bounds are numbers
app.ws('/bad2', { resume: { ttl: '1m' } })

const sent: SendResult = app.sendTo('session-id', { hello: 'world' })
void sent
