/** The demo page in headless Chromium: live SSE tokens, a two-tab WebSocket chat, upload progress and a paused, resumed download. */
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { createDemo } from '../examples/demo/app.js'
import { launchChromium } from './helpers.js'

/** What the page keeps on `window.demo` (examples/demo/public/assets/demo.js). */
interface PageState {
  tokens: { arrivals: number[] }
  dl: { statuses: number[]; received: number }
  startDownload(pauseAt: number): void
}

test('the demo page streams tokens live, chats across tabs, uploads with progress and resumes a download', async (t) => {
  const browser = await launchChromium(t)
  if (!browser) return
  const demo = createDemo({ tokenDelayMs: 40 })
  const { url } = await demo.app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => {
    await demo.app.close({ timeout: 100 })
    demo.cleanup()
  })
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(String(e)))
  await page.goto(url)
  await page.waitForSelector('#chat-status[data-state="open"]', { timeout: 10_000 })

  // Tokens arrive one by one while the server is still producing them, not all at the end.
  await page.click('#tokens-start')
  await page.waitForSelector('#tokens-status[data-state="done"]', { timeout: 20_000 })
  const tokens = {
    text: (await page.textContent('#tokens-out'))!,
    arrivals: await page.evaluate(() => (globalThis as unknown as { demo: PageState }).demo.tokens.arrivals),
  }
  t.true(tokens.text.startsWith('Catzilla streams every token the moment'), tokens.text)
  t.true(tokens.text.endsWith('never makes your process grow.'), tokens.text)
  const spread = tokens.arrivals.at(-1)! - tokens.arrivals[0]!
  t.true(tokens.arrivals.length > 30 && spread > 500, `${tokens.arrivals.length} tokens over ${spread} ms: delivered live`)

  // A message sent in one tab reaches the other through the topic.
  const other = await browser.newPage()
  await other.goto(url)
  await other.waitForSelector('#chat-status[data-state="open"]', { timeout: 10_000 })
  await page.fill('#chat-input', 'hello from tab one')
  await page.press('#chat-input', 'Enter')
  await other.locator('#chat-log li', { hasText: /: hello from tab one$/ }).waitFor({ timeout: 10_000 })
  t.pass()

  // An upload reports progress to 100 % and the handler hashes exactly the bytes sent.
  const data = randomBytes(3 * 1024 * 1024 + 11)
  await page.setInputFiles('#upload-file', { name: 'blob.bin', mimeType: 'application/octet-stream', buffer: data })
  await page.fill('#upload-form input[name="note"]', 'from the test')
  await page.click('#upload-form button')
  await page.waitForSelector('#upload-status:not([data-state="sending"])', { timeout: 20_000 })
  t.is(await page.textContent('#upload-status'), '200')
  const upload = {
    progress: await page.locator('#upload-progress').evaluate((el) => (el as unknown as { value: number }).value),
    result: JSON.parse((await page.textContent('#upload-result'))!) as { received: Array<Record<string, unknown>> },
  }
  t.is(upload.progress, 100)
  t.deepEqual(upload.result.received, [
    { field: 'file', filename: 'blob.bin', size: data.length, sha256: createHash('sha256').update(data).digest('hex') },
    { field: 'note', value: 'from the test' },
  ])

  // A download paused after 1 MB resumes with Range + If-Range and verifies its SHA-256.
  await page.evaluate(() => (globalThis as unknown as { demo: PageState }).demo.startDownload(1_000_000))
  await page.waitForSelector('#download-status[data-state="paused"]', { timeout: 20_000 })
  const paused = await page.evaluate(() => (globalThis as unknown as { demo: PageState }).demo.dl.received)
  t.true(paused >= 1_000_000 && paused < demo.sampleSize, `paused at ${paused}`)
  await page.click('#download-resume')
  await page.waitForSelector('#download-status[data-state="verified"]', { timeout: 20_000 })
  const dl = await page.evaluate(() => {
    const { statuses, received } = (globalThis as unknown as { demo: PageState }).demo.dl
    return { statuses, received }
  })
  t.deepEqual(dl.statuses, [200, 206], 'the rest came as a 206')
  t.is(dl.received, demo.sampleSize)
  t.deepEqual(errors, [])
})
