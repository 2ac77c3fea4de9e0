"""The mutation matrix: from one cached baseline, every meaningful change misses and every cosmetic
change hits, each checked with a real run."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import run

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.reuse.plan import HIT, MISS, plan

pytestmark = pytest.mark.slow

MATRIX = Path(__file__).resolve().parent / "pipelines" / "matrix"
TAG = "valohai-reuse-matrix:latest"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"mutation does not apply: {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def _yaml(old: str, new: str) -> Callable[[Path, object], None]:
    return lambda project, _client: _edit(project / "valohai.yaml", old, new)


def _file(name: str, old: str, new: str) -> Callable[[Path, object], None]:
    return lambda project, _client: _edit(project / name, old, new)


def _moved_tag(project: Path, client) -> None:
    client.images.get("valohai-reuse-matrix:other").tag(TAG)


def _alias_tag(project: Path, client) -> None:
    client.images.get(TAG).tag("valohai-reuse-matrix:alias")
    _edit(
        project / "valohai.yaml",
        f"image: {TAG}\n    description",
        "image: valohai-reuse-matrix:alias\n    description",
    )


def _touched(project: Path, _client) -> None:
    later = time.time() + 100
    os.utime(project / "data" / "in.txt", (later, later))


def _same_bytes_elsewhere(project: Path, _client) -> None:
    (project / "elsewhere").mkdir()
    shutil.copy(project / "data" / "in.txt", project / "elsewhere" / "in.txt")
    _edit(project / "valohai.yaml", "default: data/in.txt", "default: elsewhere/in.txt")


MISSES = {
    "parameter value": _yaml("default: 2\n", "default: 3\n"),
    "float parameter value": _yaml("default: 0.5", "default: 0.25"),
    "flag value": _yaml("default: false", "default: true"),
    "pass-as": _yaml("type: integer\n", "type: integer\n        pass-as: -n {v}\n"),
    "command": _yaml("sh work.sh {parameters}", "sh work.sh {parameters} --again"),
    "input bytes": _file("data/in.txt", "two", "three"),
    "input name as the step sees it": _yaml(
        "default: data/in.txt", "default: data/in.txt\n        filename: x.txt"
    ),
    "entry script": _file("work.sh", "summarize", "summarize extra"),
    "sourced helper": _file("lib.sh", "args:", "arguments:"),
    "dependency manifest": _file("requirements.txt", "2.0", "2.1"),
    "image tag moved to other content": _moved_tag,
    "environment variable": _yaml("default: full", "default: lite"),
    "resources": _yaml("max: 1", "max: 2"),
    "environment slug": _yaml("    description: does", "    environment: gpu-large\n    description: does"),
}

HITS = {
    "comments and formatting": _yaml(
        "      - name: work\n        type: execution\n        step: work\n",
        "      # the only node\n      - {name: work,   type: execution, step: work}   # flow style\n",
    ),
    "key order": _yaml(
        "    name: work\n    image: valohai-reuse-matrix:latest\n",
        "    image: valohai-reuse-matrix:latest\n    name: work\n",
    ),
    "description": _yaml("does the work", "does all of the work"),
    "time limit": _yaml("    description: does", "    time-limit: 1h\n    description: does"),
    "another step edited": _yaml("command: echo other", "command: echo different"),
    "another step added": _yaml(
        "- pipeline:", "- step:\n    name: third\n    image: x\n    command: ls\n- pipeline:"
    ),
    "node renamed": _yaml("      - name: work\n", "      - name: renamed-work\n"),
    "default restated in an override": _yaml(
        "        step: work\n",
        "        step: work\n        override:\n"
        "          parameters:\n            - name: count\n              default: 2\n",
    ),
    "integer given as text": _yaml("default: 2\n", "default: '2'\n"),
    "input touched, bytes unchanged": _touched,
    "same bytes and name from another place": _same_bytes_elsewhere,
    "file outside the step's scope": _file("README.md", "nobody", "somebody"),
    "same image content, another tag": _alias_tag,
}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, docker_client):
    import docker

    client = docker.from_env()
    base = client.images.get("valohai-reuse-example:busybox")
    base.tag(TAG)
    if not client.images.list(name="valohai-reuse-matrix:other"):
        ctx = tmp_path_factory.mktemp("image")
        (ctx / "Dockerfile").write_text("FROM valohai-reuse-example:busybox\nRUN echo other > /other\n")
        client.images.build(path=str(ctx), tag="valohai-reuse-matrix:other", rm=True)  # no container left
    root = tmp_path_factory.mktemp("matrix")
    env = {
        "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'cache.db'}",
        "AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE": (root / "artifacts").as_uri(),
        "AIRFLOW__VALOHAI_REUSE__WORK_DIR": str(root / "work"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        project = root / "project"
        shutil.copytree(MATRIX, project)
        first = run(build_dags(project / "valohai.yaml")["matrix"], docker_client)
        assert first.state == "success" and first.containers_started == 1
        yield root, first.xcoms["work"]["execution_id"]


@pytest.fixture
def mutated(baseline, docker_client, monkeypatch):
    root, source = baseline
    for key in ("SQL_ALCHEMY_CONN", "ARTIFACT_STORE", "WORK_DIR"):
        monkeypatch.setenv(f"AIRFLOW__VALOHAI_REUSE__{key}", os.environ[f"AIRFLOW__VALOHAI_REUSE__{key}"])
    project = root / "project"
    shutil.rmtree(project)
    shutil.copytree(MATRIX, project)
    yield project, source
    docker_client.images.get("valohai-reuse-example:busybox").tag(TAG)


def _run(project: Path, docker_client):
    dags = build_dags(project / "valohai.yaml")
    result = run(dags["matrix"], docker_client)
    assert result.state == "success", result.task_states
    (value,) = result.xcoms.values()
    return value, result.containers_started


@pytest.mark.parametrize("mutation", sorted(MISSES))
def test_meaningful_change_misses(mutated, docker_client, mutation):
    project, _source = mutated
    MISSES[mutation](project, docker_client)
    (predicted,) = plan(project / "valohai.yaml", "matrix")
    value, started = _run(project, docker_client)
    assert value["reused"] is False and started == 1
    assert (predicted.status, predicted.fingerprint) == (MISS, value["fingerprint"])  # the plan agrees


@pytest.mark.parametrize("mutation", sorted(HITS))
def test_cosmetic_change_hits(mutated, docker_client, mutation):
    project, source = mutated
    HITS[mutation](project, docker_client)
    (predicted,) = plan(project / "valohai.yaml", "matrix")
    value, started = _run(project, docker_client)
    assert value["reused_from"] == source and started == 0
    assert (predicted.status, predicted.source_execution) == (HIT, source)  # the plan agrees
