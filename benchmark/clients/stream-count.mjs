// Streaming load client: one GET, decodes chunked framing incrementally, counts body bytes and
// delimiter occurrences (events or lines) so every message is checked, prints one JSON line.
// usage: node stream-count.mjs <port> <path> <delimiter: sse|line|none>
import net from 'node:net'

const [port, path, mode = 'none'] = process.argv.slice(2)
const delim = mode === 'sse' ? Buffer.from('\n\n') : mode === 'line' ? Buffer.from('\n') : null
const started = process.hrtime.bigint()
let head = Buffer.alloc(0)
let inBody = false
let chunked = false
let bytes = 0
let events = 0
let tail = Buffer.alloc(0) // last bytes of body, to count delimiters across chunk boundaries
let pending = Buffer.alloc(0) // undecoded chunked framing
let left = 0 // bytes left in the current chunk
let done = false

function body(data) {
  bytes += data.length
  if (delim === null) return
  const buf = tail.length ? Buffer.concat([tail, data]) : data
  let i = buf.indexOf(delim, 0)
  let last = -1
  while (i !== -1) {
    events++
    last = i
    i = buf.indexOf(delim, i + delim.length)
  }
  const keepFrom = Math.max(last + delim.length, buf.length - (delim.length - 1))
  tail = buf.subarray(keepFrom)
}

function dechunk(data) {
  pending = pending.length ? Buffer.concat([pending, data]) : data
  for (;;) {
    if (left > 0) {
      const n = Math.min(left, pending.length)
      if (n === 0) return
      body(pending.subarray(0, n))
      pending = pending.subarray(n)
      left -= n
      if (left > 0) return
      left = -2 // expect CRLF after the data
    }
    if (left === -2) {
      if (pending.length < 2) return
      pending = pending.subarray(2)
      left = 0
    }
    const eol = pending.indexOf('\r\n')
    if (eol === -1) return
    const size = parseInt(pending.subarray(0, eol).toString('latin1'), 16)
    pending = pending.subarray(eol + 2)
    if (size === 0) {
      done = true
      sock.end()
      return
    }
    left = size
  }
}

const sock = net.connect(Number(port), '127.0.0.1', () => {
  sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
})
sock.on('data', (data) => {
  if (!inBody) {
    head = Buffer.concat([head, data])
    const end = head.indexOf('\r\n\r\n')
    if (end === -1) return
    const headText = head.subarray(0, end).toString('latin1').toLowerCase()
    chunked = headText.includes('transfer-encoding: chunked')
    inBody = true
    data = head.subarray(end + 4)
  }
  if (chunked) dechunk(data)
  else body(data)
})
sock.on('close', () => {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  process.stdout.write(JSON.stringify({ bytes, events, seconds, complete: !chunked || done }) + '\n')
})
sock.on('error', (e) => {
  process.stderr.write(String(e) + '\n')
})
