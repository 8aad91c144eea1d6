/** `npm start`: listens with the demo app (examples/demo/app.ts) on PORT (default 3000). */
import { createDemo } from './app.js'

const { app, cleanup } = createDemo()
const port = Number(process.env.PORT ?? 3000)
const { url } = await app.listen({ port, host: process.env.HOST ?? '127.0.0.1' })
console.log(`Catzilla demo listening on ${url}`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log('closing...')
    void app.close({ timeout: 5000 }).then(() => {
      cleanup()
      process.exit(0)
    })
  })
}
