#!/usr/bin/env bash
# Builds kubelet and kube-proxy from k8s.io/kubernetes (the release the control plane is built
# from, build-control-plane.sh) and caches them outside the repo, keyed by version. Prints the
# directory that holds them (<dir>/kubelet, <dir>/kube-proxy).
#
# NODE_ASSETS, when set and holding both, is used as is.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"

if [[ -n "${NODE_ASSETS:-}" ]]; then
  for bin in kubelet kube-proxy; do
    [[ -x "$NODE_ASSETS/$bin" ]] || { echo "build-node: NODE_ASSETS=$NODE_ASSETS has no $bin" >&2; exit 1; }
  done
  echo "$NODE_ASSETS"
  exit 0
fi

cache_root="${DATAFORCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataforce-webhooks}"
assets="$cache_root/node-${KUBE_VERSION}"
complete() { [[ -x "$assets/kubelet" && -x "$assets/kube-proxy" ]]; }
if complete; then
  echo "$assets"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.build-node.lock"
flock 9
if complete; then
  echo "$assets"
  exit 0
fi

command -v go >/dev/null || { echo "build-node: Go is required to build kubelet and kube-proxy" >&2; exit 1; }
# shellcheck source=../env/kube-module.sh
source "$(dirname "$0")/../env/kube-module.sh"
start=$(date +%s)
# A work dir of its own: build-control-plane.sh rewrites src/kubernetes/go.mod.
work="$cache_root/src/kubernetes-node"
rm -rf "${assets:?}.tmp"
mkdir -p "$work" "$assets.tmp"
export GOFLAGS="-buildvcs=false -mod=mod"
export CGO_ENABLED=0
echo "build-node: building kubelet and kube-proxy $KUBE_VERSION (first run only; a few minutes on 2 cores)" >&2
kube_module "$work" dataforce.io/nodebuild "$KUBE_VERSION" \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
(
  cd "$work"
  go mod tidy -e >/dev/null 2>&1 || true
  go build -tags tools -trimpath -ldflags "$(kube_ldflags "$KUBE_VERSION")" -o "$assets.tmp/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
)
rm -rf "${assets:?}"
mv "$assets.tmp" "$assets"
echo "build-node: done in $(( $(date +%s) - start ))s: $assets" >&2
echo "$assets"
