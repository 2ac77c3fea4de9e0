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


def test_the_run_ledger_says_what_each_task_ran_or_reused_and_the_time_saved(reuse_env, docker_client):
    import sqlite3

    project = copy_project(EXAMPLE, reuse_env / "project")
    dag = build_dags(project / "valohai.yaml")["nightly-training"]
    first = run(dag, docker_client)
    second = run(dag, docker_client)
    db = sqlite3.connect(reuse_env / "cache.db")
    rows = {
        (run_id, task): (kind, execution, saved, reason)
        for run_id, task, kind, execution, saved, reason in db.execute(
            "select run_id, task_id, kind, execution_id, saved_s, reason from vr_ledger"
        )
    }
    durations = dict(db.execute("select id, duration_s from vr_executions"))
    assert len(rows) == 6
    for task_id, value in first.xcoms.items():
        (first_run,) = {r for r, t in rows if t == task_id and rows[r, t][0] == "ran"}
        kind, execution, saved, reason = rows[first_run, task_id]
        assert execution == value["execution_id"] and saved is None
        assert reason == f"no earlier successful execution of step '{value['step']}'"
        (second_run,) = {r for r, t in rows if t == task_id and r != first_run}
        kind, execution, saved, reason = rows[second_run, task_id]
        assert (kind, execution, reason) == ("reused", value["execution_id"], None)
        assert saved == durations[execution] and saved > 0
    assert second.xcoms["train"]["kind"] == "reused"
