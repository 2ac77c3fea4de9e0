#!/usr/bin/env bash
# One-command set-up on a fresh machine: Docker daemon, a compose tool, a headless browser, virtual
# environment, package, local images (the busybox test images and python:3.11-bookworm for the
# example pipeline, each built only when absent or out of date).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/start-docker.sh
# a compose tool validates docker-compose.yaml in the tests (images cannot be pulled everywhere)
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
fi
# a headless browser checks the plugin's pages in the Airflow UI in the tests (Debian's, driven by selenium)
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }
fi
# Docker's own registry on loopback: the tests pull an image by digest from it (no public registry here)
if ! command -v docker-registry >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null; }
fi
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
scripts/build-images.sh
scripts/build-python-image.sh
echo "ready: run the tests with .venv/bin/python -m pytest"
