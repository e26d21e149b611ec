#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd
# from their Go modules (no Docker, no downloads outside the Go module proxy) and
# caches them outside the repo, keyed by version. Prints the directory that holds
# the binaries (KUBEBUILDER_ASSETS layout: <dir>/kube-apiserver, <dir>/etcd,
# <dir>/kubectl, plus <dir>/kube-controller-manager and <dir>/kube-scheduler).
#
# When KUBEBUILDER_ASSETS is set and holds the first three, it is used as is (the
# controllers are then optional: control planes that need them say so).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  for bin in kube-apiserver etcd kubectl; do
    [[ -x "$KUBEBUILDER_ASSETS/$bin" ]] || { echo "build-control-plane: KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no $bin" >&2; exit 1; }
  done
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache_root="${DATAFORCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataforce-webhooks}"
assets="$cache_root/k8s-${KUBE_VERSION}-etcd-${ETCD_VERSION}"
complete() {
  for bin in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd; do
    [[ -x "$assets/$bin" ]] || return 1
  done
}
if complete; then
  echo "$assets"
  exit 0
fi

# One build at a time per cache (a test run and `make dev` may start together);
# whoever waited finds the binaries built by the other.
mkdir -p "$cache_root"
exec 9>"$cache_root/.build.lock"
flock 9
if complete; then
  echo "$assets"
  exit 0
fi

command -v go >/dev/null || { echo "build-control-plane: Go is required to build kube-apiserver and etcd" >&2; exit 1; }
log() { echo "build-control-plane: $*" >&2; }
start=$(date +%s)
work="$cache_root/src"
rm -rf "$assets.tmp"
mkdir -p "$work/kubernetes" "$work/etcd" "$assets.tmp"
export GOFLAGS="-buildvcs=false -mod=mod"
export CGO_ENABLED=0

# --- kube-apiserver + kubectl from k8s.io/kubernetes ---------------------------
# k8s.io/kubernetes points its staging modules (k8s.io/api, client-go, ...) at
# ./staging; a consumer must replace each of them with the published v0.X.Y.
log "building kube-apiserver, kube-controller-manager, kube-scheduler and kubectl $KUBE_VERSION (first run only; ~8 min on 2 cores, a few more for the controllers)"
staging_version="v0.${KUBE_VERSION#v1.}"
kube_gomod=$(cd "$work/kubernetes" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
go_directive=$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$kube_gomod" | head -1)
{
  echo "module dataforce.io/controlplane"
  echo
  echo "go $go_directive"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$kube_gomod" \
    | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
} > "$work/kubernetes/go.mod"
cat > "$work/kubernetes/tools.go" <<'GO'
//go:build tools

package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
major=1
minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
(
  cd "$work/kubernetes"
  go mod tidy -e >/dev/null 2>&1 || true
  go build -tags tools -trimpath -ldflags "$ldflags" -o "$assets.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
)

# --- etcd from go.etcd.io/etcd/server/v3 (its main package) -------------------
log "building etcd $ETCD_VERSION"
cat > "$work/etcd/go.mod" <<MOD
module dataforce.io/etcdbuild

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
cat > "$work/etcd/tools.go" <<'GO'
//go:build tools

package etcdbuild

import _ "go.etcd.io/etcd/server/v3"
GO
(
  cd "$work/etcd"
  go mod tidy -e >/dev/null 2>&1 || true
  go build -tags tools -trimpath -ldflags "-s -w" -o "$assets.tmp/etcd" go.etcd.io/etcd/server/v3
)

rm -rf "$assets"
mv "$assets.tmp" "$assets"
log "done in $(( $(date +%s) - start ))s: $assets"
echo "$assets"
