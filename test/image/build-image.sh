#!/usr/bin/env bash
# Builds the project's image with podman from the unchanged Dockerfile, on a machine with no
# Docker engine and no registry to pull from:
#   1. podman-config.sh: runc and rlimits that this kind of machine needs (a containers.conf drop-in);
#   2. build-base.sh: the Dockerfile's FROM built locally (debootstrap + Node), cached;
#   3. podman build --pull=never --network host (the build reaches the npm registry and the Debian
#      mirror through the host's network; layers are cached by podman, so a second build of
#      unchanged sources takes seconds).
# Prints the image name (IMAGE, default dataforce-webhooks:dev). Progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
IMAGE="${IMAGE:-dataforce-webhooks:dev}"
log() { echo "build-image: $*" >&2; }

bash "$here/podman-config.sh"
base_start=$(date +%s)
bash "$here/build-base.sh" >/dev/null
base_seconds=$(($(date +%s) - base_start))

start=$(date +%s)
log "podman build -t $IMAGE (base ready in ${base_seconds}s)"
version=$(node -p 'require(process.argv[1]).version' "$repo/package.json")
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
source=$(git -C "$repo" remote get-url origin 2>/dev/null || true)
# The per-commit values also as --label: podman (buildah) reuses a cached LABEL step whose ARGs
# changed, so the Dockerfile's LABEL alone would keep the revision of the build that made the
# cache; --label is applied to the final image, after the cache.
podman build --pull=never --network host --layers -t "$IMAGE" \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg SOURCE="$source" \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.revision="$revision" \
  --label org.opencontainers.image.source="$source" \
  "$repo" >&2
# No `podman image prune` here: the build stage's untagged layers are the cache of the next build.
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE in $(($(date +%s) - start))s: $((size / 1000000)) MB"
echo "$IMAGE"
