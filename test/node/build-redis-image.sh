#!/usr/bin/env bash
# Builds the image the chart's embedded Redis runs in (redis.embedded.image), for a node that
# can pull no image: Debian's redis-server on the project's local base (test/image/build-base.sh),
# run by the chart as uid 1000 with a read-only root. podman caches the layer. Prints the image
# name (REDIS_IMAGE). Progress goes to stderr.
set -euo pipefail

REDIS_IMAGE="${REDIS_IMAGE:-localhost/dataforce-webhooks/redis:local}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

bash "$here/../image/podman-config.sh"
base=$(bash "$here/../image/build-base.sh")
work=$(mktemp -d "${TMPDIR:-/tmp}/dfw-redis-image.XXXXXX")
trap 'rm -rf "${work:?}"' EXIT
cat >"$work/Containerfile" <<CONTAINERFILE
FROM $base
RUN apt-get update \\
 && apt-get install -y --no-install-recommends redis-server \\
 && rm -rf /var/lib/apt/lists/*
USER 1000:1000
CMD ["redis-server"]
CONTAINERFILE
podman build --pull=never --network host --layers -q -t "$REDIS_IMAGE" -f "$work/Containerfile" "$work" >&2
echo "$REDIS_IMAGE"
