#!/usr/bin/env bash
# Build python:3.11-bookworm locally, without a registry: a Debian bookworm root file system made with
# debootstrap (python3, pip, bash), the pinned wheels of scripts/images/python-3.11-bookworm.txt
# (numpy, pandas, scikit-learn, valohai-utils, ...) installed into it by the host's pip, loaded with
# `docker import`. It stands in for the public image of that name, which the example names: where a
# registry is reachable that image works as is (the example's `pip install -r requirements.txt`
# installs the packages there; here they are already satisfied, so pip needs no network).
# An image of that name that this script did not build (a pulled one) is never replaced; one it built
# from the same recipe is kept. Needs root (debootstrap). Usage: scripts/build-python-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."
image=python:3.11-bookworm
pins=scripts/images/python-3.11-bookworm.txt
label=io.valohai-reuse.recipe
recipe=$(cat "$0" "$pins" | sha256sum | cut -c1-16)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
built=$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$image" 2>/dev/null || echo absent)
built=${built/<no value>/}
if [ "$built" = "$recipe" ]; then
  echo "$image is up to date (recipe $recipe)"
  exit 0
elif [ "$built" != absent ] && [ -z "$built" ]; then
  echo "$image exists and was not built here (pulled?): left as it is"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "building $image needs root (debootstrap); run scripts/setup.sh as root" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
fi
python=.venv/bin/python
[ -x "$python" ] || python=python3

work=$(mktemp -d /var/tmp/python-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "building $image (recipe $recipe): debootstrap and pip, logs in $work while it runs"
# The root file system and the wheels do not depend on each other: fetch both at once.
debootstrap --variant=minbase --include=python3,python3-pip,python-is-python3,bash,ca-certificates \
  bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 &
rootfs=$!
# Wheels for the image's CPython 3.11 on glibc (bookworm has 2.36), whatever the host's Python is.
"$python" -m pip install -q --disable-pip-version-check --no-warn-conflicts --target "$work/site" \
  --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: \
  --platform "manylinux_2_28_$(uname -m)" --platform "manylinux2014_$(uname -m)" \
  -r "$pins" >"$work/pip.log" 2>&1 &
wheels=$!
wait "$rootfs" || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
wait "$wheels" || { tail -20 "$work/pip.log" >&2; exit 1; }

root=$work/root
site=$root/usr/local/lib/python3.11/dist-packages
mkdir -p "$site"
rm -rf "$work/site/bin"
cp -a "$work/site/." "$site/"
# As in the public image, pip may install into the system Python (no PEP 668 marker) and apt's
# caches are not kept.
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL $label=$recipe" \
  --change 'CMD ["python3"]' \
  - "$image" >/dev/null
# the image of an older recipe, unless something still uses it
[ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
size=$(docker image inspect -f '{{.Size}}' "$image")
echo "built $image in $(($(date +%s) - start)) s ($((size / 1000000)) MB)"
