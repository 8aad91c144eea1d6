/** `batchScheduling`: the JS thread runs under SCHED_BATCH while the app serves (Linux), and only then. */
import test from 'ava'
import { readFileSync } from 'node:fs'
import { Catzilla } from '../index.js'

const SCHED_OTHER = 0
const SCHED_BATCH = 3

/** The scheduling policy of a thread (field 41 of its `stat`; the name in parentheses may hold spaces). */
function policy(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[41 - 3])
}
/** This process's main (JS) thread: its tid is the pid. */
const jsThread = () => policy(readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8'))

const linux = process.platform === 'linux' ? test.serial : test.skip

linux('while the app listens its JS thread runs under SCHED_BATCH, and close() gives the default policy back', async (t) => {
  t.is(jsThread(), SCHED_OTHER)
  const app = new Catzilla()
  app.get('/', () => 'ok')
  const { url } = await app.listen({ port: 0 })
  try {
    t.is(jsThread(), SCHED_BATCH)
    t.is(await (await fetch(url)).text(), 'ok')
  } finally {
    await app.close()
  }
  t.is(jsThread(), SCHED_OTHER)
})

linux('batchScheduling: false leaves the thread under the default policy', async (t) => {
  const app = new Catzilla({ batchScheduling: false })
  app.get('/', () => 'ok')
  const { url } = await app.listen({ port: 0 })
  t.teardown(() => app.close())
  t.is(await (await fetch(url)).text(), 'ok')
  t.is(jsThread(), SCHED_OTHER)
})

linux('an app that fails to listen leaves the default policy behind', async (t) => {
  const first = new Catzilla()
  first.get('/', () => 'ok')
  const { port } = await first.listen({ port: 0 })
  t.teardown(() => first.close())
  const second = new Catzilla()
  second.get('/', () => 'ok')
  await t.throwsAsync(second.listen({ port }), { code: 'CZ_LISTEN' })
  // The first app still serves, so the thread stays under SCHED_BATCH for it...
  t.is(jsThread(), SCHED_BATCH)
  await first.close()
  // ...and its close gives the default back; the failed listen did not leave a second guard.
  t.is(jsThread(), SCHED_OTHER)
})

linux('two apps on one thread: the thread keeps SCHED_BATCH until the last one closes', async (t) => {
  const a = new Catzilla()
  const b = new Catzilla()
  for (const app of [a, b]) app.get('/', () => 'ok')
  await a.listen({ port: 0 })
  await b.listen({ port: 0 })
  await a.close()
  t.is(jsThread(), SCHED_BATCH, 'b still serves')
  await b.close()
  t.is(jsThread(), SCHED_OTHER)
})

test('batchScheduling must be a boolean', (t) => {
  t.throws(() => new Catzilla({ batchScheduling: 'yes' as unknown as boolean }), { instanceOf: TypeError, message: 'batchScheduling must be a boolean' })
})
