#!/usr/bin/env bash
# Builds the pod sandbox ("pause") image from pause.c, with no registry: a static binary in a
# `FROM scratch` image (podman), saved as an OCI archive for `ctr images import`. Cached outside
# the repo, keyed by the source's hash. Prints the archive's path; the image is named
# PAUSE_IMAGE (containerd's sandbox_image must name the same).
set -euo pipefail

PAUSE_IMAGE="${PAUSE_IMAGE:-localhost/dataforce-webhooks/pause:local}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root="${DATAFORCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataforce-webhooks}"
key=$( (cat "$here/pause.c"; echo "$PAUSE_IMAGE") | sha256sum | cut -c1-16)
archive="$cache_root/pause-$key.oci.tar"
if [[ -s "$archive" ]]; then
  echo "$archive"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.build-pause.lock"
flock 9
if [[ -s "$archive" ]]; then
  echo "$archive"
  exit 0
fi

command -v gcc >/dev/null || { echo "build-pause: gcc is required (Debian: gcc, libc6-dev)" >&2; exit 1; }
bash "$here/../image/podman-config.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/dfw-pause.XXXXXX")
trap 'rm -rf "${work:?}"' EXIT
gcc -Os -s -static -Wall -Wextra -Werror -o "$work/pause" "$here/pause.c"
printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$work/Containerfile"
podman build --pull=never --network none -q -t "$PAUSE_IMAGE" -f "$work/Containerfile" "$work" >&2
podman save --format oci-archive -o "$work/pause.oci.tar" "$PAUSE_IMAGE" >&2
mv "$work/pause.oci.tar" "$archive"
echo "build-pause: built $PAUSE_IMAGE ($(stat -c %s "$work/pause") bytes static) into $archive" >&2
echo "$archive"
