"""End to end: the example pipeline runs in real containers, and an unchanged re-run reuses every node."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import copy_project, run

from airflow_valohai_reuse import build_dags

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nightly"


def _blob(uri: str) -> bytes:
    return Path(uri.removeprefix("file://")).read_bytes()


def test_unchanged_rerun_reuses_every_node_with_identical_outputs(reuse_env, docker_client):
    project = copy_project(EXAMPLE, reuse_env / "project")
    dag = build_dags(project / "valohai.yaml")["nightly-training"]

    first = run(dag, docker_client)
    assert first.state == "success", first.task_states
    assert first.containers_started == 3
    assert not any(x["reused"] for x in first.xcoms.values())

    second = run(dag, docker_client)
    assert second.state == "success", second.task_states
    assert second.containers_started == 0
    for task_id, value in second.xcoms.items():
        assert value["reused"] is True
        assert value["reused_from"] == first.xcoms[task_id]["execution_id"]
        before = {o["name"]: _blob(o["uri"]) for o in first.xcoms[task_id]["outputs"]}
        after = {o["name"]: _blob(o["uri"]) for o in value["outputs"]}
        assert after == before and after
    model = second.xcoms["train"]["outputs"][0]
    assert model["name"] == "model.txt"
    assert _blob(model["uri"]).startswith(b"weights total=85 epochs=3")
