/** Distribution: the loader's error names the platform and the prebuilt targets; the declared targets stay in sync. */
import test from 'ava'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { platformName, TARGETS } from '../src/native.js'

const run = promisify(execFile)
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  napi: { targets: string[] }
  optionalDependencies?: Record<string, string>
  version: string
}

test('the targets named in errors are the targets package.json builds', (t) => {
  t.deepEqual([...TARGETS], pkg.napi.targets)
})

test('every prebuilt platform package becomes an optional dependency of the published package, at its version', async (t) => {
  const names = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl', 'darwin-x64', 'darwin-arm64', 'win32-x64-msvc']
  // @ts-expect-error: a plain .mjs build script without type declarations
  const { optionalDependencies } = (await import('../scripts/optional-deps.mjs')) as { optionalDependencies: (p: unknown) => Record<string, string> }
  t.deepEqual(optionalDependencies(pkg), Object.fromEntries(names.map((n) => [`catzilla-${n}`, pkg.version])))
  t.is(pkg.optionalDependencies, undefined, 'the repository lists none: npm ci needs them in the lockfile')
  for (const n of names) {
    const sub = JSON.parse(readFileSync(new URL(`../npm/${n}/package.json`, import.meta.url), 'utf8')) as Record<string, unknown>
    t.is(sub.name, `catzilla-${n}`)
    t.is(sub.version, pkg.version)
    t.deepEqual(sub.files, [`catzilla.${n}.node`])
    t.truthy(sub.os && sub.cpu, n)
    if (n.startsWith('linux')) t.deepEqual(sub.libc, [n.endsWith('musl') ? 'musl' : 'glibc'])
  }
})

test('without a usable native core, importing catzilla fails with CZ_NATIVE naming the platform, the targets and how to build', async (t) => {
  const err = await t.throwsAsync(
    run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', "await import('./index.ts')"], {
      env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: '/nonexistent/catzilla.node' },
    }),
  )
  const stderr = (err as { stderr?: string }).stderr ?? ''
  t.regex(stderr, /CZ_NATIVE/)
  t.true(stderr.includes(`no native core for ${platformName()}`), stderr)
  t.true(stderr.includes('x86_64-unknown-linux-musl') && stderr.includes('aarch64-apple-darwin'))
  t.regex(stderr, /npm run build:native/)
})
