#!/usr/bin/env bash
# Builds the helm CLI from its Go module (helm.sh/helm/v4; no downloads outside
# the Go module proxy) and caches it outside the repo, keyed by version. Prints
# the path of the binary.
#
# When HELM_BIN is set it is used as is (e.g. a helm from a package manager).
# helm.sh/helm/v4 has no replace directives, so `go install module@version`
# works without a wrapper module.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.1}"

if [[ -n "${HELM_BIN:-}" ]]; then
  [[ -x "$HELM_BIN" ]] || { echo "build-helm: HELM_BIN=$HELM_BIN is not executable" >&2; exit 1; }
  echo "$HELM_BIN"
  exit 0
fi

cache_root="${DATAFORCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataforce-webhooks}"
dir="$cache_root/helm-$HELM_VERSION"
if [[ -x "$dir/helm" ]]; then
  echo "$dir/helm"
  exit 0
fi

# One build at a time (parallel test runs wait for each other).
mkdir -p "$cache_root"
exec 9>"$cache_root/.build-helm.lock"
flock 9
if [[ -x "$dir/helm" ]]; then
  echo "$dir/helm"
  exit 0
fi

command -v go >/dev/null || { echo "build-helm: Go is required to build helm" >&2; exit 1; }
major="${HELM_VERSION%%.*}"   # v4
start=$(date +%s)
echo "build-helm: building helm $HELM_VERSION (first run only; a few minutes on 2 cores)" >&2
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
# The version ldflags make `helm version` report the release, as the official
# build does (Makefile: -X helm.sh/helm/vN/internal/version.version=...).
GOBIN="$dir.tmp" CGO_ENABLED=0 GOFLAGS="-buildvcs=false" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION -X helm.sh/helm/$major/internal/version.gitTreeState=clean" \
  "helm.sh/helm/$major/cmd/helm@$HELM_VERSION"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "build-helm: done in $(( $(date +%s) - start ))s: $dir/helm" >&2
echo "$dir/helm"
