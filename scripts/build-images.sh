#!/usr/bin/env bash
# Build the small local images the example pipeline and the tests use: a static busybox on scratch.
# No registry is needed. Usage: scripts/build-images.sh
set -euo pipefail
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q "statically linked"; then
  busybox=/bin/busybox
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$busybox" "$ctx/busybox"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q -t valohai-reuse-example:busybox "$ctx" >/dev/null
echo "built valohai-reuse-example:busybox"
