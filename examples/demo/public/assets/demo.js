// Demo page logic: EventSource tokens, WebSocket chat, upload progress, Range-resumable download.
const $ = (id) => document.getElementById(id)
const status = (id, state, text = state) => {
  const el = $(id)
  el.dataset.state = state
  el.textContent = text
}

// Live tokens: each SSE event is one token; `done` ends it (closing stops EventSource reconnecting).
const tokens = { arrivals: [] }
$('tokens-start').onclick = () => {
  $('tokens-out').textContent = ''
  tokens.arrivals = []
  status('tokens-status', 'streaming')
  const es = new EventSource('/tokens')
  es.addEventListener('token', (e) => {
    tokens.arrivals.push(performance.now())
    $('tokens-out').textContent += e.data
  })
  es.addEventListener('done', (e) => {
    es.close()
    status('tokens-status', 'done', `done: ${JSON.parse(e.data).tokens} tokens`)
  })
  es.onerror = () => {
    es.close()
    status('tokens-status', 'error')
  }
}

// Chat: every message goes to the server, which publishes it to the 'chat' topic in Rust.
const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/chat/ws`)
ws.onopen = () => status('chat-status', 'open')
ws.onclose = () => status('chat-status', 'closed')
ws.onmessage = (e) => {
  const li = document.createElement('li')
  li.textContent = e.data
  $('chat-log').append(li)
  $('chat-log').scrollTop = $('chat-log').scrollHeight
}
$('chat-form').onsubmit = (e) => {
  e.preventDefault()
  if ($('chat-input').value) ws.send($('chat-input').value)
  $('chat-input').value = ''
}

// Upload: XMLHttpRequest, because it reports upload progress (fetch does not).
$('upload-form').onsubmit = (e) => {
  e.preventDefault()
  const xhr = new XMLHttpRequest()
  xhr.open('POST', '/upload')
  xhr.upload.onprogress = (p) => {
    if (p.lengthComputable) $('upload-progress').value = Math.round((p.loaded / p.total) * 100)
  }
  xhr.onload = () => {
    $('upload-result').textContent = xhr.responseText
    status('upload-status', xhr.status === 200 ? 'done' : 'error', `${xhr.status}`)
  }
  xhr.onerror = () => status('upload-status', 'error')
  status('upload-status', 'sending')
  xhr.send(new FormData($('upload-form')))
}

// Download: read the body chunk by chunk; Pause cancels the read, Resume asks for the rest with
// `Range: bytes=<received>-` and `If-Range: <etag>` (a changed file comes back whole, as 200).
const dl = { chunks: [], received: 0, total: 0, etag: null, pause: false, statuses: [] }
const log = (line) => ($('download-log').textContent += `${line}\n`)

async function fetchRest() {
  const headers = dl.received > 0 ? { range: `bytes=${dl.received}-`, 'if-range': dl.etag } : {}
  const res = await fetch('/download/sample.bin', { headers, cache: 'no-store' })
  dl.statuses.push(res.status)
  log(`${res.status} ${res.headers.get('content-range') ?? ''} ${res.headers.get('content-length')} bytes`)
  if (res.status === 200) {
    dl.chunks = []
    dl.received = 0
    dl.total = Number(res.headers.get('content-length'))
    dl.etag = res.headers.get('etag')
  } else if (res.status !== 206) {
    throw new Error(`unexpected status ${res.status}`)
  }
  const reader = res.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    dl.chunks.push(value)
    dl.received += value.byteLength
    $('download-progress').value = Math.round((dl.received / dl.total) * 100)
    if (dl.pause || (dl.pauseAt !== undefined && dl.received >= dl.pauseAt)) {
      dl.pause = false
      dl.pauseAt = undefined
      await reader.cancel()
      status('download-status', 'paused', `paused at ${dl.received} bytes`)
      $('download-pause').disabled = true
      $('download-resume').disabled = false
      return
    }
  }
  await verify()
}

async function verify() {
  const whole = new Uint8Array(dl.received)
  let at = 0
  for (const c of dl.chunks) {
    whole.set(c, at)
    at += c.byteLength
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', whole))
  const hex = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('')
  const expected = await (await fetch('/download/sample.sha256')).json()
  const ok = hex === expected.sha256 && dl.received === expected.size
  log(`sha256 ${hex} ${ok ? 'matches' : 'DIFFERS from ' + expected.sha256}`)
  status('download-status', ok ? 'verified' : 'error', ok ? `verified ${dl.received} bytes` : 'hash mismatch')
  $('download-pause').disabled = true
  $('download-resume').disabled = true
}

function run(step) {
  $('download-pause').disabled = false
  $('download-resume').disabled = true
  status('download-status', 'downloading')
  step().catch((err) => status('download-status', 'error', String(err)))
}

/** Starts a download; `pauseAt` pauses by itself once that many bytes arrived (used by the test). */
function startDownload(pauseAt) {
  Object.assign(dl, { chunks: [], received: 0, total: 0, etag: null, pause: false, pauseAt, statuses: [] })
  $('download-log').textContent = ''
  run(fetchRest)
}
$('download-start').onclick = () => startDownload()
$('download-pause').onclick = () => (dl.pause = true)
$('download-resume').onclick = () => run(fetchRest)

// For the browser test and the curious: the page's state.
window.demo = { tokens, dl, startDownload }
