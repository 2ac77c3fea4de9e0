"""A step's commands run as Valohai runs them: one script in one shell (what one command exports or
sources holds for the next), bash where the image has it, else /bin/sh; the last command's status
decides; a leading shebang line picks the interpreter. Real containers, on an image with bash and on
busybox alone."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
from harness import run

from airflow_valohai_reuse import build_dags

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BASH_IMAGE = "valohai-reuse-example:bash"
BUSYBOX_IMAGE = "valohai-reuse-example:busybox"

STEPS = """
- step:
    name: shared-{tag}
    image: {image}
    command:
      - source ./lib.sh
      - export GREETING="$(greet world)"
      - "false"
      - echo "$GREETING $LIB_VERSION shell=${{BASH_VERSION:+bash}}" > /valohai/outputs/seen.txt
- step:
    name: last-fails-{tag}
    image: {image}
    command:
      - echo before > /valohai/outputs/before.txt
      - "false"
- step:
    name: shebang-{tag}
    image: {image}
    command:
      - "#!/bin/sh"
      - echo "shell=${{BASH_VERSION:+bash}}" > /valohai/outputs/seen.txt
"""
PIPELINES = """
- pipeline:
    name: {name}-{tag}
    nodes:
      - name: only
        type: execution
        step: {name}-{tag}
    edges: []
"""
IMAGES = {"bash": BASH_IMAGE, "busybox": BUSYBOX_IMAGE}


@pytest.fixture(scope="module")
def images(docker_client):
    if not docker_client.images.list(name=BASH_IMAGE):
        subprocess.run([str(ROOT / "scripts" / "build-images.sh")], check=True)
    if not docker_client.images.list(name=BASH_IMAGE):
        pytest.fail(f"{BASH_IMAGE} could not be built (scripts/build-images.sh needs Debian's bash-static)")
    return IMAGES


@pytest.fixture
def dags(reuse_env, images):
    project = reuse_env / "project"
    project.mkdir()
    (project / "lib.sh").write_text('greet() { echo "hello $1"; }\nLIB_VERSION=7\n')
    text = "".join(STEPS.format(tag=tag, image=image) for tag, image in images.items())
    for tag in images:
        for name in ("shared", "last-fails", "shebang"):
            text += PIPELINES.format(name=name, tag=tag)
    (project / "valohai.yaml").write_text(text)
    return build_dags(project / "valohai.yaml")


def _output(result, name: str) -> str:
    (found,) = [o for o in result.xcoms["only"]["outputs"] if o["name"] == name]
    return Path(urlparse(found["uri"]).path).read_text().strip()


def test_commands_share_one_bash_shell_where_the_image_has_bash(dags, docker_client):
    result = run(dags["shared-bash"], docker_client)
    # sourced function and variable, an export seen by the next command, a failure before the last
    # command that does not decide
    assert result.state == "success", result.task_states
    assert _output(result, "seen.txt") == "hello world 7 shell=bash"


def test_commands_share_one_sh_shell_on_busybox(dags, docker_client):
    result = run(dags["shared-busybox"], docker_client)
    assert result.state == "success", result.task_states
    assert _output(result, "seen.txt") == "hello world 7 shell="


@pytest.mark.parametrize("tag", list(IMAGES))
def test_the_last_commands_status_decides(dags, docker_client, tag):
    result = run(dags[f"last-fails-{tag}"], docker_client)
    assert result.state == "failed"
    assert result.task_states["only"] == "failed"
    assert result.containers_started == 1


def test_a_shebang_line_picks_the_interpreter(dags, docker_client):
    result = run(dags["shebang-bash"], docker_client)
    assert result.state == "success", result.task_states
    assert _output(result, "seen.txt") == "shell="  # /bin/sh ran it, though the image has bash
