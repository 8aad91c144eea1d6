#!/usr/bin/env bash
# Packs the main package and the linux-x64-gnu package, installs both tarballs into a fresh project with no Rust
# toolchain on PATH, and runs the smoke app (scripts/smoke/) from ESM import, CommonJS require and tsc --strict.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
platform=linux-x64-gnu
binary="npm/$platform/catzilla.$platform.node"
[ -f "$binary" ] || bash scripts/cross-build.sh x86_64-unknown-linux-gnu
[ -f dist/index.js ] || node scripts/build-ts.mjs

work=$(mktemp -d)
# The published package lists its platform packages as optionalDependencies (added at pack time, as
# `napi pre-publish` does on release; see scripts/optional-deps.mjs).
cp package.json "$work/package.json.orig"
trap 'cp "$work/package.json.orig" package.json; rm -rf "$work"' EXIT
node scripts/optional-deps.mjs add
npm pack --silent --pack-destination "$work" >/dev/null
cp "$work/package.json.orig" package.json
(cd "npm/$platform" && npm pack --silent --pack-destination "$work" >/dev/null)
main=$(ls "$work"/catzilla-[0-9]*.tgz)
native=$(ls "$work"/catzilla-"$platform"-*.tgz)

echo "== package contents"
if tar tzf "$main" | grep -E '\.node$'; then
  echo "install-test: the main package must not ship a binary" >&2
  exit 1
fi
if [ "$(tar tzf "$native" | grep -c '\.node$')" != 1 ]; then
  echo "install-test: $native must hold exactly one binary" >&2
  exit 1
fi
if file -b "$binary" | grep -q 'not stripped'; then
  echo "install-test: $binary is not stripped" >&2
  exit 1
fi
if ! tar xzOf "$main" package/package.json | grep -q '"catzilla-linux-arm64-musl"'; then
  echo "install-test: the packed package.json lacks its optionalDependencies" >&2
  exit 1
fi
echo "main:   $(basename "$main") $(stat -c %s "$main") bytes, $(tar tzf "$main" | wc -l) files"
echo "native: $(basename "$native") $(stat -c %s "$native") bytes (binary $(stat -c %s "$binary") bytes, stripped)"

# A PATH with node and the usual tools but no cargo or rustc.
clean="$(dirname "$(command -v node)"):/usr/local/bin:/usr/bin:/bin"
if PATH="$clean" command -v cargo >/dev/null 2>&1 || PATH="$clean" command -v rustc >/dev/null 2>&1; then
  echo "install-test: cannot build a PATH without cargo/rustc" >&2
  exit 1
fi

app="$work/app"
mkdir "$app"
cp scripts/smoke/* "$app/"
cd "$app"
echo '{ "name": "catzilla-smoke", "version": "1.0.0", "private": true, "type": "module" }' > package.json
echo "== npm install (no cargo on PATH)"
PATH="$clean" npm install --no-audit --no-fund "$main" "$native"
echo "== smoke"
PATH="$clean" node esm.mjs
PATH="$clean" node cjs.cjs
PATH="$clean" node "$root/node_modules/typescript/bin/tsc" --noEmit --strict --module nodenext --moduleResolution nodenext \
  --target es2022 --types node --typeRoots "$root/node_modules/@types" types.ts
echo "smoke (tsc --noEmit --strict): the published types check"
echo "== import time"
PATH="$clean" node -e "const t = performance.now(); await import('catzilla'); console.log('import catzilla: ' + (performance.now() - t).toFixed(1) + ' ms')" --input-type=module
