// Writes (`add`) or removes (`remove`) the main package's optionalDependencies on its per-platform packages, one per
// package.json `napi.targets` entry at the package's version. The published package lists them (so npm installs the
// binary that fits); the repository does not, because `npm ci` needs every dependency in the lockfile and the
// platform packages do not exist on the registry before the first release. `napi pre-publish` does the same on release.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const PLATFORMS = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-pc-windows-msvc': 'win32-x64-msvc',
}

/** The optionalDependencies the published package carries. */
export function optionalDependencies(pkg) {
  return Object.fromEntries(
    pkg.napi.targets.map((t) => {
      const platform = PLATFORMS[t]
      if (platform === undefined) throw new Error(`optional-deps: no platform name for target ${t}`)
      return [`${pkg.napi.binaryName}-${platform}`, pkg.version]
    }),
  )
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const path = new URL('../package.json', import.meta.url)
  const pkg = JSON.parse(readFileSync(path, 'utf8'))
  if (process.argv[2] === 'add') pkg.optionalDependencies = optionalDependencies(pkg)
  else if (process.argv[2] === 'remove') delete pkg.optionalDependencies
  else throw new Error('usage: node scripts/optional-deps.mjs add|remove')
  writeFileSync(path, JSON.stringify(pkg, null, 2) + '\n')
}
