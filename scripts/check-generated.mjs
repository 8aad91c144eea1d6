// Fails when the generated napi binding (src/binding.cjs, src/binding.d.cts) differs from what is committed.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const files = ['src/binding.cjs', 'src/binding.d.cts']
if (!existsSync('.git')) {
  console.log('check-generated: not a git checkout, skipped')
  process.exit(0)
}
try {
  execFileSync('git', ['diff', '--exit-code', '--stat', '--', ...files], { stdio: 'inherit' })
  console.log('check-generated: binding files match the committed ones')
} catch {
  console.error('check-generated: the generated binding drifted; run `npm run build` and commit src/binding.*')
  process.exit(1)
}
