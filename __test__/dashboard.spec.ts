/** The debug dashboard in headless Chromium: live counters and stream rows over SSE, closing a stream from the page, and its access rules. */
import test from 'ava'
import { deferred, launchChromium, openRaw, serve, within } from './helpers.js'
import { StreamingResponse } from '../index.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test('the dashboard shows live streams and closes one from the page, which runs its finally', async (t) => {
  const browser = await launchChromium(t)
  if (!browser) return
  const feedDone = deferred<string>()
  const { app, url, port } = await serve((app) => {
    app.get('/feed', () =>
      new StreamingResponse(
        (async function* () {
          try {
            for (let i = 0; ; i++) {
              yield `tick ${i}\n`
              await sleep(50)
            }
          } finally {
            feedDone.resolve('finally ran')
          }
        })(),
      ),
    )
    app.get('/firehose', () =>
      new StreamingResponse(
        (function* () {
          for (;;) yield 'x'.repeat(16 * 1024)
        })(),
        { bufferSize: 32 * 1024 },
      ),
    )
    app.dashboard('/_catzilla', { auth: { username: 'ops', password: 'correct horse' }, intervalMs: 200 })
  })
  t.teardown(() => app.close({ timeout: 100 }))

  // Two live streams: one read steadily, one whose client never reads.
  const feed = await fetch(`${url}/feed`)
  const reader = feed.body!.getReader()
  void (async () => {
    while (!(await reader.read().catch(() => ({ done: true }))).done);
  })()
  const stalled = openRaw(port, '/firehose')
  stalled.pause()
  t.teardown(() => stalled.destroy())

  const context = await browser.newContext({ httpCredentials: { username: 'ops', password: 'correct horse' } })
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(String(e)))
  await page.goto(`${url}/_catzilla`)
  await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 })
  await page.waitForSelector('#streams tr[data-path="/feed"]', { timeout: 10_000 })
  await page.waitForSelector('#streams tr.stalled[data-path="/firehose"]', { timeout: 10_000 })
  t.is(await page.locator('#streams tr[data-path^="/_catzilla"]').count(), 0, 'the dashboard leaves its own stream out')
  t.true(Number(await page.textContent('[data-counter="streams"] b')) >= 3, 'feed, firehose and the dashboard stream')
  if (process.env.CZ_SCREENSHOT) {
    // For the README: some requests, so the chart has a line.
    for (let i = 0; i < 15; i++) {
      await Promise.all(Array.from({ length: 20 * (i % 5) }, () => fetch(`${url}/_catzilla`, { headers: { authorization: `Basic ${Buffer.from('ops:correct horse').toString('base64')}` } }).then((r) => r.text())))
      await sleep(200)
    }
    await page.screenshot({ path: process.env.CZ_SCREENSHOT, fullPage: true })
  }

  await page.click('#streams tr[data-path="/feed"] button')
  t.is(await within(feedDone.promise, 5000, 'the feed generator finally'), 'finally ran')
  await page.waitForSelector('#streams tr[data-path="/feed"]', { state: 'detached', timeout: 10_000 })
  t.deepEqual(errors, [])
})

test('the dashboard refuses requests without its credentials and close requests without its header', async (t) => {
  const { app, url } = await serve((app) => app.dashboard('/_catzilla', { auth: { username: 'ops', password: 'pw' } }))
  t.teardown(() => app.close({ timeout: 100 }))
  const anonymous = await fetch(`${url}/_catzilla`)
  t.is(anonymous.status, 401)
  t.regex(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm="catzilla dashboard"/)
  await anonymous.text()
  const wrong = await fetch(`${url}/_catzilla/events`, { headers: { authorization: `Basic ${Buffer.from('ops:PW').toString('base64')}` } })
  t.is(wrong.status, 401)
  await wrong.text()
  const authorization = `Basic ${Buffer.from('ops:pw').toString('base64')}`
  const ok = await fetch(`${url}/_catzilla`, { headers: { authorization } })
  t.is(ok.status, 200)
  t.regex(await ok.text(), /<title>Catzilla dashboard<\/title>/)
  const forged = await fetch(`${url}/_catzilla/streams/1/close`, { method: 'POST', headers: { authorization } })
  t.is(forged.status, 403, 'a cross-site form cannot set the dashboard header')
  await forged.text()
  const gone = await fetch(`${url}/_catzilla/streams/999/close`, { method: 'POST', headers: { authorization, 'x-catzilla-dashboard': '1' } })
  t.deepEqual(await gone.json(), { closed: false })
})

test('without auth the dashboard answers loopback clients only', async (t) => {
  const { app, url } = await serve((app) => app.dashboard('/_catzilla'), { trustProxy: true })
  t.teardown(() => app.close({ timeout: 100 }))
  const local = await fetch(`${url}/_catzilla`)
  t.is(local.status, 200)
  await local.text()
  const remote = await fetch(`${url}/_catzilla`, { headers: { 'x-forwarded-for': '203.0.113.9' } })
  t.is(remote.status, 403)
  await remote.text()
})
