#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzingclient (wstest, PyPI autobahntestsuite under Python 2.7)
# against two Catzilla echo routes (permessage-deflate without and with context takeover); fails on
# any FAILED or UNIMPLEMENTED case (AUTOBAHN_ALLOW_UNIMPLEMENTED may name groups to allow).
set -euo pipefail
cd "$(dirname "$0")/.."

# A Python 2.7 that runs: $PY27, pyenv's, or one on PATH (pyenv's shim fails when 2.7 is not selected).
for candidate in "${PY27:-}" "$HOME"/.pyenv/versions/2.7*/bin/python python2.7; do
  if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >/dev/null 2>&1; then
    PY27="$candidate"
    break
  fi
  PY27=""
done
if [ -z "$PY27" ]; then
  echo "autobahn: no Python 2.7 (wstest needs it); install one (pyenv install 2.7.18)" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
# Pinned: the last autobahntestsuite and its Python 2.7 dependencies, into a private directory.
"$PY27" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
  --target "$work/site" "autobahntestsuite==25.10.1" 2>&1 | grep -v DEPRECATION || true

npx tsx scripts/autobahn/echo-server.ts 0 > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do grep -q '^port ' "$work/server.log" && break; sleep 0.1; done
port="$(sed -n 's/^port //p' "$work/server.log")"
[ -n "$port" ] || { cat "$work/server.log"; exit 1; }

# The full suite runs against /echo (each message compressed alone, the default). wstest needs
# about 8 minutes for the 216 compression cases (12.*, 13.*: 1000 messages each, one round trip at
# a time), so /echo-context (context takeover) runs every other case and, of 13.*, the first three
# sizes of each negotiation offer (13.x.1-3): every offer, not every size again.
context_excludes='{"catzilla-context": ["12.*"'
for size in $(seq 4 18); do context_excludes+=", \"13.*.$size\""; done
context_excludes+=']}'
cases="${AUTOBAHN_CASES:-[\"*\"]}"
excludes="${AUTOBAHN_EXCLUDE_AGENT_CASES:-$context_excludes}"
cat > "$work/spec.json" <<JSON
{ "outdir": "$work/report", "servers": [{ "agent": "catzilla", "url": "ws://127.0.0.1:$port/echo" },
                                          { "agent": "catzilla-context", "url": "ws://127.0.0.1:$port/echo-context" }],
  "cases": $cases, "exclude-cases": [], "exclude-agent-cases": $excludes }
JSON
( cd "$work" && timeout 1500 "$PY27" -c "import site, sys; site.addsitedir('$work/site'); sys.argv = ['wstest'] + sys.argv[1:]; from autobahntestsuite.wstest import run; sys.exit(run())" \
    -m fuzzingclient -s spec.json > wstest.log 2>&1 ) || { tail -20 "$work/wstest.log"; exit 1; }
# Keep the report where it can be read (AUTOBAHN_REPORT=dir).
[ -z "${AUTOBAHN_REPORT:-}" ] || cp -r "$work/report" "$AUTOBAHN_REPORT"
python3 scripts/autobahn/summary.py "$work/report/index.json" ${AUTOBAHN_ALLOW_UNIMPLEMENTED-}
