#!/usr/bin/env bash
# The two podman settings this kind of machine needs, as a drop-in that leaves every other
# containers.conf alone (podman reads /etc/containers/containers.conf.d/*.conf after
# /etc/containers/containers.conf, and the later file wins per field):
#   - runtime = "runc": crun refuses this machine's hybrid (v1 + v2) cgroups;
#   - default_ulimits: the sandbox lacks CAP_SYS_RESOURCE, so the container cannot be given
#     rlimits above the ones it already has (podman's default asks for nofile 1048576).
# Idempotent: writes the drop-in only when its content differs. Needs root (CI runs as root).
set -euo pipefail

dir="${CONTAINERS_CONF_D:-/etc/containers/containers.conf.d}"
file="$dir/50-dataforce-webhooks.conf"
want='# Written by dataforce-webhooks test/image/podman-config.sh (see that script for why).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"'

if [[ "$(cat "$file" 2>/dev/null)" != "$want" ]]; then
  mkdir -p "$dir"
  printf '%s\n' "$want" >"$file.tmp"
  mv "$file.tmp" "$file"
  echo "podman-config: wrote $file" >&2
fi

# What podman resolves, whatever else is configured (an explicit CONTAINERS_CONF would skip the
# drop-in: say so rather than fail later with crun's cgroup error).
runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}')
if [[ "$runtime" != "runc" ]]; then
  echo "podman-config: podman resolves runtime \"$runtime\", not runc (CONTAINERS_CONF=${CONTAINERS_CONF:-unset})" >&2
  exit 1
fi
