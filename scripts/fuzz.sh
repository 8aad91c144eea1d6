#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for N seconds each (default 10); fails if any target finds a crash.
set -uo pipefail

SECONDS_PER_TARGET="${1:-10}"
case "$SECONDS_PER_TARGET" in
  '' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [seconds-per-target]" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "nightly not available: fuzzing skipped"
  exit 0
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked || exit 1
fi

# The machine may be small: build with at most 2 jobs unless told otherwise.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

targets=$(cargo +nightly fuzz list) || exit 1
failed=()
for t in $targets; do
  echo "=== fuzz $t (${SECONDS_PER_TARGET}s)"
  if ! cargo +nightly fuzz run "$t" -j1 -- -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048; then
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz targets failed: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
echo "all fuzz targets passed"
