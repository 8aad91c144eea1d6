#!/usr/bin/env bash
# Builds the stripped native core with zig (cargo-zigbuild) and puts each binary in its npm/<platform>/ package.
# Usage: scripts/cross-build.sh [target...]   (default: the Linux and macOS targets of package.json napi.targets;
# Windows MSVC needs Microsoft's CRT, which no registry serves, so the release workflow builds it on Windows).
# glibc targets are linked against glibc 2.17 and musl targets dynamically against musl, as napi-rs does, so one binary
# runs on every distribution of its kind; macOS builds link against zig's libSystem stubs (no SDK) and are ad-hoc
# signed by zig's linker. Installs ziglang (PyPI) and cargo-zigbuild (crates.io) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl
    x86_64-apple-darwin aarch64-apple-darwin)
fi

if ! command -v zig >/dev/null 2>&1 && ! python3 -m ziglang version >/dev/null 2>&1; then
  echo "== installing zig (PyPI ziglang)"
  python3 -m pip install --quiet ziglang==0.17.1
fi
if ! command -v cargo-zigbuild >/dev/null 2>&1; then
  echo "== installing cargo-zigbuild"
  cargo install cargo-zigbuild --locked
fi

platform() {
  case "$1" in
    x86_64-unknown-linux-gnu) echo linux-x64-gnu ;;
    aarch64-unknown-linux-gnu) echo linux-arm64-gnu ;;
    x86_64-unknown-linux-musl) echo linux-x64-musl ;;
    aarch64-unknown-linux-musl) echo linux-arm64-musl ;;
    x86_64-apple-darwin) echo darwin-x64 ;;
    aarch64-apple-darwin) echo darwin-arm64 ;;
    *) echo "cross-build.sh: unsupported target $1" >&2; return 1 ;;
  esac
}

for t in "${targets[@]}"; do
  p=$(platform "$t")
  rustup target add "$t" >/dev/null
  zig_target="$t"
  case "$t" in
    *-gnu) zig_target="$t.2.17" ;;
    # Rust links musl statically by default, which rules out a shared library: link it dynamically.
    x86_64-unknown-linux-musl) export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=-crt-static" ;;
    aarch64-unknown-linux-musl) export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=-crt-static" ;;
  esac
  echo "== building $t ($p)"
  CARGO_PROFILE_RELEASE_STRIP=symbols cargo zigbuild --release -p catzilla-node --target "$zig_target"
  out="npm/$p/catzilla.$p.node"
  lib="target/$t/release/libcatzilla_node.so"
  case "$t" in *-apple-darwin) lib="target/$t/release/libcatzilla_node.dylib" ;; esac
  cp "$lib" "$out"
  echo "   $out: $(stat -c %s "$out") bytes"
done
