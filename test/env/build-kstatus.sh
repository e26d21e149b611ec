#!/usr/bin/env bash
# Builds test/kstatus (a tiny Go program around sigs.k8s.io/cli-utils/pkg/kstatus/status,
# the library Flux's health checks use) from the Go module proxy and caches it outside the
# repo, keyed by a hash of its sources (go.mod, go.sum, main.go). Prints the path of the binary.
#
# When KSTATUS_BIN is set it is used as is.
set -euo pipefail

if [[ -n "${KSTATUS_BIN:-}" ]]; then
  [[ -x "$KSTATUS_BIN" ]] || { echo "build-kstatus: KSTATUS_BIN=$KSTATUS_BIN is not executable" >&2; exit 1; }
  echo "$KSTATUS_BIN"
  exit 0
fi

src="$(cd "$(dirname "$0")/../kstatus" && pwd)"
key=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)
cache_root="${DATAFORCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataforce-webhooks}"
dir="$cache_root/kstatus-$key"
if [[ -x "$dir/kstatus" ]]; then
  echo "$dir/kstatus"
  exit 0
fi

# One build at a time (parallel test runs wait for each other).
mkdir -p "$cache_root"
exec 9>"$cache_root/.build-kstatus.lock"
flock 9
if [[ -x "$dir/kstatus" ]]; then
  echo "$dir/kstatus"
  exit 0
fi

command -v go >/dev/null || { echo "build-kstatus: Go is required to build test/kstatus" >&2; exit 1; }
start=$(date +%s)
echo "build-kstatus: building test/kstatus (first run only; about a minute on 2 cores)" >&2
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
# -mod=readonly: the committed go.sum pins every module; a stale one fails instead of drifting.
(cd "$src" && CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" go build -trimpath -ldflags "-s -w" -o "$dir.tmp/kstatus" .)
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "build-kstatus: done in $(( $(date +%s) - start ))s: $dir/kstatus" >&2
echo "$dir/kstatus"
