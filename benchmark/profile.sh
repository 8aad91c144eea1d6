#!/usr/bin/env bash
# Profiling path: the same scenario through the standalone Rust server (no Node in the picture)
# and through Node, so the boundary cost shows as the difference.
#   npm run bench:profile [-- scenario]     scenario: hello (default) | sse | stream
# Rust side: `valgrind --tool=callgrind` on the `profiling` build (instruction counts are repeatable);
# Node side: `node --cpu-prof` on the benchmark app (writes a .cpuprofile for Chrome DevTools).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="${1:-hello}"
case "$scenario" in
  hello) path="/hello"; load() { wrk -t1 -c16 -d5s "http://127.0.0.1:$1$path" | grep -E "Requests/sec"; } ;;
  sse) path="/sse?n=200000"; load() { node benchmark/clients/stream-count.mjs "$1" "$path" sse; } ;;
  stream) path="/stream?bytes=67108864&chunk=16384"; load() { node benchmark/clients/stream-count.mjs "$1" "$path" none; } ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
out="benchmark/.work/profile"
mkdir -p "$out"

echo "== building crates/server with the profiling profile (release + debug symbols)"
cargo build --profile profiling -p catzilla-server
echo "== Rust only: callgrind on catzilla-server, scenario $scenario"
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" target/profiling/catzilla-server --port 3401 --threads 1 &
vg=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:3401/hello >/dev/null && break; sleep 0.2; done
load 3401
kill -INT $vg; wait $vg || true
callgrind_annotate "$out/callgrind.out" 2>/dev/null | head -40 | tee "$out/callgrind-top.txt"

echo "== Through Node: --cpu-prof on the benchmark app, same scenario"
npm run build >/dev/null
PORT=3402 node --cpu-prof --cpu-prof-dir="$out" --import tsx benchmark/peers/catzilla.ts &
nd=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:3402/hello >/dev/null && break; sleep 0.2; done
load 3402
kill -INT $nd; wait $nd || true
echo "profiles in $out: callgrind.out (open with kcachegrind or callgrind_annotate), *.cpuprofile (Chrome DevTools)"
