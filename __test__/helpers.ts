/** Test helpers: start apps on 127.0.0.1:0, raw-socket HTTP exchanges, bounded waits. */
import net from 'node:net'
import WebSocket from 'ws'
import { existsSync, readFileSync } from 'node:fs'
import type { ExecutionContext } from 'ava'
import { Catzilla } from '../index.js'
import type { AppOptions } from '../index.js'

/** Starts an app configured by `setup` on a free port; returns it with its base URL. */
export async function serve(setup: (app: Catzilla) => void, options?: AppOptions) {
  const app = new Catzilla({ onError: () => {}, ...options })
  setup(app)
  const { url, port } = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url, port }
}

/** Resolves with `value` when `p` settles first, or rejects after `ms` milliseconds. */
export function within<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

/** Polls `condition` every `every` ms until it holds; fails after `ms`. */
export function until(condition: () => boolean | Promise<boolean>, what: string, ms = 5000, every = 10): Promise<void> {
  return within(
    (async () => {
      while (!(await condition())) await sleep(every)
    })(),
    ms,
    what,
  )
}

/** A promise with its resolve function exposed. */
export function deferred<T = void>() {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Sends raw bytes and collects everything until the server closes (or `ms` pass). */
export function rawExchange(port: number, request: string | Buffer, ms = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const sock = net.connect(port, '127.0.0.1', () => sock.write(request))
    const timer = setTimeout(() => {
      sock.destroy()
      resolve(Buffer.concat(chunks))
    }, ms)
    sock.on('data', (c) => chunks.push(c))
    sock.on('error', (e) => {
      clearTimeout(timer)
      if (chunks.length) resolve(Buffer.concat(chunks))
      else reject(e)
    })
    sock.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    })
  })
}

/** Splits a raw HTTP/1.x response into status line, lower-cased headers and body bytes. */
export function parseRaw(raw: Buffer) {
  const end = raw.indexOf('\r\n\r\n')
  const head = raw.subarray(0, end).toString('latin1').split('\r\n')
  const statusLine = head[0]!
  const headers: Record<string, string> = {}
  for (const line of head.slice(1)) {
    const i = line.indexOf(':')
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
  }
  return { statusLine, headers, body: raw.subarray(end + 4) }
}

/** Opens a socket, sends a GET and returns the socket plus a stream of received bytes. */
export function openRaw(port: number, path: string) {
  const sock = net.connect(port, '127.0.0.1')
  sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
  return sock
}

/** The kernel's maximum TCP receive and send buffer sizes (autotuning ceilings). */
export function socketBufferCeiling(): number {
  const max = (file: string) => {
    try {
      return Number(readFileSync(file, 'utf8').trim().split(/\s+/).pop())
    } catch {
      return 8 * 1024 * 1024
    }
  }
  return max('/proc/sys/net/ipv4/tcp_rmem') + max('/proc/sys/net/ipv4/tcp_wmem')
}

/** Decodes a chunked body: the data chunks, and whether the terminating `0` chunk arrived. */
export function dechunk(body: Buffer): { chunks: Buffer[]; terminated: boolean } {
  const chunks: Buffer[] = []
  let pos = 0
  while (pos < body.length) {
    const eol = body.indexOf('\r\n', pos)
    if (eol === -1) break
    const size = parseInt(body.subarray(pos, eol).toString('latin1'), 16)
    if (Number.isNaN(size)) break
    if (size === 0) return { chunks, terminated: body.subarray(eol, eol + 4).toString() === '\r\n\r\n' }
    if (eol + 2 + size > body.length) {
      chunks.push(body.subarray(eol + 2))
      break
    }
    chunks.push(body.subarray(eol + 2, eol + 2 + size))
    pos = eol + 2 + size + 2
  }
  return { chunks, terminated: false }
}

const chromiumPath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p))

/**
 * Launches headless Chromium (Debian's package, driven by playwright-core) and closes it at the
 * end of the test. Returns `undefined` (test passed with a log line) when Chromium is missing,
 * except in CI, where `.ci/run` installs it and its absence fails the test.
 */
export async function launchChromium(t: ExecutionContext) {
  if (!chromiumPath) {
    if (process.env.CI) t.fail('Chromium is required in CI (.ci/run installs the chromium package)')
    else t.log('chromium not installed; skipped (install the Debian chromium package to run it)')
    t.pass()
    return undefined
  }
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(() => browser.close())
  return browser
}

/** Opens a `ws` client and waits for the handshake. */
export async function connect(
  url: string,
  protocols?: string | string[],
  options?: WebSocket.ClientOptions,
  onUpgrade?: (res: import('node:http').IncomingMessage) => void,
): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, options)
  if (onUpgrade) ws.once('upgrade', onUpgrade)
  await within(
    new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    }),
    5000,
    `open ${url}`,
  )
  return ws
}

/** Collects the next `n` messages of a client. */
export function next(ws: WebSocket, n = 1): Promise<Array<{ data: string; binary: boolean }>> {
  const got: Array<{ data: string; binary: boolean }> = []
  return within(
    new Promise((resolve) => {
      const on = (d: Buffer, binary: boolean) => {
        got.push({ data: binary ? d.toString('hex') : d.toString(), binary })
        if (got.length === n) {
          ws.off('message', on)
          resolve(got)
        }
      }
      ws.on('message', on)
    }),
    5000,
    `${n} message(s)`,
  )
}

/** Resolves with a client's close code and reason. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return within(new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))), 5000, 'close')
}

