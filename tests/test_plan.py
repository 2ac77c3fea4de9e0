"""The plan predicts what the run then does; the CLI prints plans and explanations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import copy_project, run

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.reuse.plan import HIT, MISS, UNKNOWN, plan

pytestmark = pytest.mark.slow

BASIC = Path(__file__).resolve().parent / "pipelines" / "basic"


@pytest.fixture
def project(reuse_env):
    return copy_project(BASIC, reuse_env / "project")


def _agrees(plans, result):
    """Every predicted hit is reused from the predicted execution; every predicted miss runs."""
    for predicted in plans:
        value = result.xcoms[predicted.task_id]
        if predicted.status == HIT:
            assert value["reused_from"] == predicted.source_execution, predicted
        elif predicted.status == MISS:
            assert value["reused"] is False, predicted
            # a node that runs because reuse is off has no fingerprint before its inputs exist
            assert predicted.fingerprint in (None, value["fingerprint"]), predicted


@pytest.mark.parametrize(
    ("change", "conf", "expected"),
    [
        (None, {}, {"prepare": HIT, "fit": HIT, "report": HIT}),
        (None, {"epochs": 7}, {"prepare": HIT, "fit": MISS, "report": UNKNOWN}),
        ("raw.txt", {}, {"prepare": MISS, "fit": UNKNOWN, "report": UNKNOWN}),
        (None, {"reuse_executions": False}, {"prepare": MISS, "fit": MISS, "report": MISS}),
    ],
)
def test_plan_agrees_with_the_run(project, docker_client, change, conf, expected):
    dag = build_dags(project / "valohai.yaml")["basic"]
    assert run(dag, docker_client).state == "success"
    if change:
        (project / change).write_text("changed bytes\n")
    plans = plan(project / "valohai.yaml", "basic", conf)
    assert {p.task_id: p.status for p in plans} == expected
    result = run(dag, docker_client, conf)
    assert result.state == "success"
    _agrees(plans, result)


def test_plan_starts_no_container_and_explains_misses(project, docker_client):
    dag = build_dags(project / "valohai.yaml")["basic"]
    run(dag, docker_client)
    before = len(docker_client.containers.list(all=True))
    plans = {p.task_id: p for p in plan(project / "valohai.yaml", "basic", {"epochs": 9})}
    assert len(docker_client.containers.list(all=True)) == before
    assert plans["fit"].reason == "parameter epochs 2 → 9"
    assert plans["report"].waits_on == ["fit"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("valohai-reuse")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=os.environ.copy())


def test_cli_plan_and_explain(project, docker_client):
    dag = build_dags(project / "valohai.yaml")["basic"]
    first = run(dag, docker_client)
    out = _cli("plan", str(project / "valohai.yaml"), "basic", "--conf", '{"epochs": 3}', "--json")
    assert out.returncode == 0, out.stderr
    plans = {p["task_id"]: p for p in json.loads(out.stdout)}
    assert plans["prepare"]["source_execution"] == first.xcoms["prepare"]["execution_id"]
    assert plans["fit"]["status"] == "miss" and "epochs 2 → 3" in plans["fit"]["reason"]

    second = run(dag, docker_client, {"epochs": 3})
    fit = second.xcoms["fit"]["execution_id"]
    out = _cli("explain", fit, "--json")
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["compared_with"] == first.xcoms["fit"]["execution_id"]
    assert found["changes"] == "parameter epochs 2 → 3"
    assert found["code_files"] == []

    out = _cli("explain", "nope")
    assert out.returncode == 2 and "no successful execution with id 'nope'" in out.stderr
    out = _cli("plan", str(project / "valohai.yaml"), "nope")
    assert out.returncode == 2 and "no pipeline 'nope'" in out.stderr


def test_plan_says_when_an_identical_execution_is_running_elsewhere(project, reuse_env):
    from airflow_valohai_reuse.cache.executions import ExecutionCache
    from airflow_valohai_reuse.cache.lease import Leases, owner_info
    from airflow_valohai_reuse.contracts import TaskKey

    (prepare, *_) = plan(project / "valohai.yaml", "basic")
    assert prepare.status == MISS and "running now" not in prepare.reason
    leases = Leases(ExecutionCache(f"sqlite:///{reuse_env / 'cache.db'}").engine, seconds=60)
    owner = owner_info(TaskKey("basic", "nightly", "prepare"))
    assert leases.acquire(prepare.fingerprint, "someone-else", owner) == (True, None)
    (again, *_) = plan(project / "valohai.yaml", "basic")
    assert again.status == MISS
    assert "an identical execution is running now in basic/nightly/prepare" in again.reason
