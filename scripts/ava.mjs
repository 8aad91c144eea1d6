// Runs ava with its normal output and ends with one plain summary line ("ava: N passed, M failed")
// that CI systems can read; exits with ava's status.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const cli = fileURLToPath(new URL('../node_modules/ava/entrypoints/cli.mjs', import.meta.url))
const child = spawn(process.execPath, [cli, ...process.argv.slice(2)], { stdio: ['inherit', 'pipe', 'pipe'] })
let text = ''
for (const stream of [child.stdout, child.stderr]) {
  stream.on('data', (d) => {
    text += d
    ;(stream === child.stdout ? process.stdout : process.stderr).write(d)
  })
}
child.on('close', (code) => {
  const count = (re) => Number(re.exec(text)?.[1] ?? 0)
  const passed = count(/(\d+) tests? passed/)
  const failed = count(/(\d+) tests? failed/) + count(/(\d+) tests? remained pending/) + count(/(\d+) uncaught exceptions?/)
  process.stdout.write(`\nava: ${passed} passed, ${failed} failed\n`)
  process.exit(code ?? 1)
})
