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
# shellcheck source=kube-module.sh
source "$(dirname "$0")/kube-module.sh"
log "building kube-apiserver, kube-controller-manager, kube-scheduler and kubectl $KUBE_VERSION (first run only; ~8 min on 2 cores, a few more for the controllers)"
kube_module "$work/kubernetes" dataforce.io/controlplane "$KUBE_VERSION" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
ldflags=$(kube_ldflags "$KUBE_VERSION")
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
