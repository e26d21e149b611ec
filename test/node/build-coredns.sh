#!/usr/bin/env bash
# Builds CoreDNS (the cluster DNS of the test node, test/node/node.ts) from its Go module and
# caches it outside the repo, keyed by version. Prints the path of the binary.
# COREDNS_BIN, when set, is used as is.
set -euo pipefail

COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"

if [[ -n "${COREDNS_BIN:-}" ]]; then
  [[ -x "$COREDNS_BIN" ]] || { echo "build-coredns: COREDNS_BIN=$COREDNS_BIN is not executable" >&2; exit 1; }
  echo "$COREDNS_BIN"
  exit 0
fi

cache_root="${DATAFORCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataforce-webhooks}"
dir="$cache_root/coredns-$COREDNS_VERSION"
if [[ -x "$dir/coredns" ]]; then
  echo "$dir/coredns"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.build-coredns.lock"
flock 9
if [[ -x "$dir/coredns" ]]; then
  echo "$dir/coredns"
  exit 0
fi

command -v go >/dev/null || { echo "build-coredns: Go is required to build CoreDNS" >&2; exit 1; }
start=$(date +%s)
echo "build-coredns: building CoreDNS $COREDNS_VERSION (first run only; a few minutes on 2 cores)" >&2
rm -rf "${dir:?}.tmp"
mkdir -p "$dir.tmp"
# The module has no replace directives: `go install module@version` builds it as released (the
# default plugin set, kubernetes included).
GOBIN="$dir.tmp" CGO_ENABLED=0 GOFLAGS="-buildvcs=false" go install -trimpath -ldflags "-s -w" \
  "github.com/coredns/coredns@$COREDNS_VERSION"
rm -rf "${dir:?}"
mv "$dir.tmp" "$dir"
echo "build-coredns: done in $(( $(date +%s) - start ))s: $dir/coredns" >&2
echo "$dir/coredns"
