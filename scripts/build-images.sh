#!/usr/bin/env bash
# Build the small local images the example pipeline and the tests use: a static busybox on scratch,
# and the same with Debian's static bash as /bin/bash (an image where a step's commands run in bash,
# as Valohai runs them where bash is present). No registry is needed. Usage: scripts/build-images.sh
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

# bash-static from Debian's archive (apt-get download needs no root); without it, only busybox
if (cd "$ctx" && apt-get download -q bash-static >/dev/null 2>&1) && dpkg-deb -x "$ctx"/bash-static_*.deb "$ctx/deb"; then
  cp "$ctx/deb/bin/bash-static" "$ctx/bash"
  cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM valohai-reuse-example:busybox
COPY bash /bin/bash
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build -q -t valohai-reuse-example:bash "$ctx" >/dev/null
  echo "built valohai-reuse-example:bash"
else
  echo "warning: could not download Debian's bash-static; valohai-reuse-example:bash not built" >&2
fi
