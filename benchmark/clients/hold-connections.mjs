// Memory-scenario client: opens N connections and holds them, either idle after one keep-alive
// request ('idle') or stalled mid-stream after the first packet ('slow'). Prints "ready <n> failed
// <f> dropped <d>" when all are established (dropped: closed by the server after they were ready,
// e.g. by an idle timeout); each "more" line on stdin opens another N and prints the totals again.
// Holds them all until stdin closes.
// usage: node hold-connections.mjs <port> <n> <idle|slow>
import net from 'node:net'

const [port, n, mode] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]]
const path = mode === 'slow' ? '/stream?bytes=1000000000000&chunk=16384' : '/hello'
const sockets = []
let ready = 0
let failed = 0
let dropped = 0

function open() {
  return new Promise((resolve) => {
    // From 127.0.0.1–4 in turn: four times the ephemeral ports, which the TIME_WAIT sockets left by
    // the rows before would otherwise exhaust at 20,000 connections.
    const s = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${1 + (sockets.length % 4)}` })
    let settled = false
    const settle = (ok) => {
      if (settled) return
      settled = true
      if (ok) ready++
      else failed++
      resolve()
    }
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`))
    s.once('data', () => {
      if (mode === 'slow') s.pause()
      settle(true)
    })
    s.on('error', () => settle(false))
    s.on('close', () => {
      if (settled) dropped++
      settle(false)
    })
    s.setTimeout(30_000, () => settle(false))
    sockets.push(s)
  })
}

async function batch() {
  for (let i = 0; i < n; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, n - i) }, open))
  }
  process.stdout.write(`ready ${ready} failed ${failed} dropped ${dropped}\n`)
}

await batch()
let lines = Promise.resolve()
process.stdin.setEncoding('utf8')
process.stdin.on('data', (d) => {
  for (const line of d.split('\n')) if (line.trim() === 'more') lines = lines.then(batch)
})
process.stdin.on('end', () => process.exit(0))
process.stdin.on('close', () => process.exit(0))
