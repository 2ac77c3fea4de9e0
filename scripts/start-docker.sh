#!/usr/bin/env bash
# Make sure a Docker daemon answers. Installs Debian's docker.io and starts dockerd when absent.
# --bridge=none: containers get loopback only; steps need no network to stage inputs or outputs.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1 || ! command -v busybox >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io busybox-static >/dev/null
fi
nohup dockerd --iptables=false --bridge=none >/var/log/valohai-reuse-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "dockerd did not start; see /var/log/valohai-reuse-dockerd.log" >&2
exit 1
