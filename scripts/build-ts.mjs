// Compiles the TypeScript API to dist/ and copies the generated binding and the dashboard page next to it, so
// `import { Catzilla } from 'catzilla'` works from plain Node without a TypeScript loader.
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url))
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' })
for (const f of readdirSync('src')) {
  if (f === 'binding.cjs' || f === 'binding.d.cts' || f.endsWith('.node')) copyFileSync(`src/${f}`, `dist/src/${f}`)
}
// Assets read at run time (the dashboard page).
mkdirSync('dist/src/dashboard', { recursive: true })
for (const f of readdirSync('src/dashboard')) copyFileSync(`src/dashboard/${f}`, `dist/src/dashboard/${f}`)
console.log('build-ts: dist/ is ready')
