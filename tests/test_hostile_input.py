"""Hostile pipelines and values: data stays data, nothing leaves its folder, secrets stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import copy_project, run

from airflow_valohai_reuse import build_dags

pytestmark = pytest.mark.slow

HOSTILE = Path(__file__).resolve().parent / "pipelines" / "hostile"
NASTY = (
    "a; touch /valohai/outputs/p1 $(touch /valohai/outputs/p2) `touch /valohai/outputs/p3` "
    "\"q\" 'q'\nline2 \\"
)


@pytest.fixture
def dags(reuse_env):
    return build_dags(copy_project(HOSTILE, reuse_env / "project") / "valohai.yaml")


def _text(uri: str) -> str:
    return Path(uri.removeprefix("file://")).read_text()


def test_parameter_metacharacters_are_data(dags, docker_client):
    result = run(dags["metachars"], docker_client, {"message": NASTY})
    assert result.state == "success", result.task_states
    outputs = {o["name"]: o["uri"] for o in result.xcoms["echo"]["outputs"]}
    assert _text(outputs["message.txt"]) == NASTY
    assert _text(outputs["listing.txt"]).split() == ["listing.txt", "message.txt"]


def test_output_links_are_never_followed_or_stored(dags, docker_client):
    result = run(dags["links"], docker_client)
    assert result.state == "success", result.task_states
    assert [o["name"] for o in result.xcoms["links"]["outputs"]] == ["real.txt"]


def test_input_name_leaving_its_folder_is_refused(reuse_env, dags, docker_client, capfd):
    result = run(dags["escape"], docker_client)
    assert result.state == "failed"
    assert result.containers_started == 0
    out = capfd.readouterr()
    assert "file name '../../escaped.txt' would leave the input folder; refused" in out.out + out.err
    assert not list(reuse_env.rglob("escaped.txt"))


def test_secret_reaches_the_container_but_no_fingerprint_cache_xcom_or_log(
    reuse_env, dags, docker_client, capfd
):
    first = run(dags["secret"], docker_client)
    assert first.state == "success", first.task_states  # the step checks it sees the value
    second = run(dags["secret"], docker_client)
    assert second.xcoms["secret"]["reused"] is True
    out = capfd.readouterr()
    assert "hunter2" not in out.out + out.err
    assert "hunter2" not in repr(first.xcoms) + repr(second.xcoms)
    assert b"hunter2" not in (reuse_env / "cache.db").read_bytes()
    for wal in reuse_env.glob("cache.db-*"):
        assert b"hunter2" not in wal.read_bytes()
    assert first.xcoms["secret"]["environment"] == {"MODE": "safe"}
