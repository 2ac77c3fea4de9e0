"""decide_in_triggerer on a real Airflow (scheduler, triggerer, dag-processor, API server): a node reused
in a second run ends in the triggerer, never queued for an executor, with the XCom a worker would push;
a node that must run, or that a run pins, is handed to a worker."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from local_airflow import LocalAirflow

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DAG = "basic"
NODES = ("prepare", "fit", "report")


def _pipelines(tmp_path: Path) -> Path:
    folder = tmp_path / "pipelines"
    shutil.copytree(ROOT / "examples" / "nightly", folder / "nightly")  # the one the script unpauses
    shutil.copytree(ROOT / "tests" / "pipelines" / "basic", folder / "basic")
    shutil.copytree(ROOT / "tests" / "pipelines" / "flight", folder / "flight")
    return folder


def start(tmp_path: Path, in_triggerer: bool) -> LocalAirflow:
    env = {
        "AIRFLOW_LOCAL_PIPELINES": str(_pipelines(tmp_path)),
        "AIRFLOW__VALOHAI_REUSE__DECIDE_IN_TRIGGERER": str(in_triggerer),
    }
    airflow = LocalAirflow(tmp_path, env).ready()
    deadline = time.monotonic() + 120
    while True:
        try:
            airflow.api(f"dags/{DAG}", "PATCH", {"is_paused": False})
            airflow.api("dags/flight", "PATCH", {"is_paused": False})
            return airflow
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def task_instances(airflow: LocalAirflow, run_id: str, dag: str = DAG) -> dict[str, dict]:
    run = urllib.request.quote(run_id, safe="")
    found = airflow.api(f"dags/{dag}/dagRuns/{run}/taskInstances")["task_instances"]
    return {ti["task_id"]: ti for ti in found}


def xcom(airflow: LocalAirflow, run_id: str, task_id: str, dag: str = DAG) -> object:
    run = urllib.request.quote(run_id, safe="")
    path = f"dags/{dag}/dagRuns/{run}/taskInstances/{task_id}/xcomEntries/valohai_execution"
    return airflow.api(path)["value"]


def run_once(airflow: LocalAirflow, conf: dict | None = None) -> tuple[str, float]:
    clock = time.monotonic()
    run_id = airflow.trigger(DAG, conf)
    assert airflow.finished(DAG, run_id, timeout=300) == "success", airflow.log.read_text()[-3000:]
    return run_id, time.monotonic() - clock


def worker_log(airflow: LocalAirflow, run_id: str, task_id: str) -> list[Path]:
    logs = airflow.home / "home" / "logs"
    return [p for p in logs.rglob("*.log") if run_id in str(p) and f"task_id={task_id}" in str(p)]


def test_a_reused_node_ends_in_the_triggerer_and_a_miss_goes_to_a_worker(tmp_path, docker_client):
    airflow = start(tmp_path, in_triggerer=True)
    try:
        first, _ = run_once(airflow)
        second, wall = run_once(airflow)
        ran, reused = task_instances(airflow, first), task_instances(airflow, second)
        for node in NODES:
            ti, before = reused[node], ran[node]
            assert ti["state"] == "success"
            # never queued for an executor, no worker host or process: the triggerer ended it
            assert ti["queued_when"] is None, ti
            assert not ti["hostname"] and ti["pid"] is None, ti
            assert before["queued_when"] is not None  # the first run's nodes ran on a worker
            value, earlier = xcom(airflow, second, node), xcom(airflow, first, node)
            assert isinstance(value, dict), value  # a real object, as a worker pushes it
            assert value["reused"] is True and earlier["reused"] is False
            assert value["reused_from"] == earlier["execution_id"]
            assert set(value) == set(earlier)
            logs = worker_log(airflow, second, node)
            assert logs and all(".trigger." in p.name for p in logs), logs  # the triggerer's log only
            said = "\n".join(p.read_text() for p in logs)
            assert f"REUSED execution {earlier['execution_id']}" in said and "time saved" in said
            shown = json.dumps(
                airflow.api(f"dags/{DAG}/dagRuns/{quote(second, safe='')}/taskInstances/{node}/logs/1")
            )
            assert f"REUSED execution {earlier['execution_id']}" in shown  # the task's log in the UI shows it
        # the run's note, written by the DAG-run listener from the run ledger, counts the reused nodes
        assert airflow.api(f"dags/{DAG}/dagRuns/{quote(second, safe='')}")["note"].startswith("3/3 reused")
        noted = task_instances(airflow, second)  # each node's note marks it in the Grid, as a worker's does
        assert all((noted[n]["note"] or "").startswith("\u267b reused") for n in NODES), noted
        # a changed parameter: prepare is reused in the triggerer, fit and report are handed to a worker
        third, _ = run_once(airflow, {"epochs": 7})
        mixed = task_instances(airflow, third)
        assert mixed["prepare"]["queued_when"] is None
        assert mixed["fit"]["queued_when"] is not None and mixed["report"]["queued_when"] is not None
        value = xcom(airflow, third, "fit")
        assert isinstance(value, dict) and value["reused"] is False
        fit_logs = "\n".join(p.read_text() for p in worker_log(airflow, third, "fit"))
        assert "decided on a worker: not reused" in fit_logs
        # a pin and reuse off: the pin is published in the triggerer, the rest run on workers
        pin = {"reuse_executions": False, "reuse_from_run": {"run_id": first, "nodes": ["prepare"]}}
        fourth, _ = run_once(airflow, pin)
        pinned = task_instances(airflow, fourth)
        assert pinned["prepare"]["queued_when"] is None, pinned
        assert pinned["fit"]["queued_when"] is not None and pinned["report"]["queued_when"] is not None
        value = xcom(airflow, fourth, "prepare")
        assert value["reused"] is True and value["kind"] == "pinned"
        assert value["reused_from"] == xcom(airflow, first, "prepare")["execution_id"]
        assert xcom(airflow, fourth, "fit")["reused"] is False
        said = "\n".join(p.read_text() for p in worker_log(airflow, fourth, "prepare"))
        assert f"PINNED execution {value['reused_from']}" in said
        fit_logs = "\n".join(p.read_text() for p in worker_log(airflow, fourth, "fit"))
        assert "decided on a worker: not reused: reuse_executions is off" in fit_logs, fit_logs[-2000:]
        print(f"second run (all reused in the triggerer): {wall:.1f} s")
    finally:
        airflow.stop()


def test_a_node_waits_in_the_triggerer_for_an_identical_execution_and_is_reused_there(
    tmp_path, docker_client
):
    airflow = start(tmp_path, in_triggerer=True)
    try:
        conf = {"seconds": 12}
        since = time.time()
        first = airflow.trigger("flight", conf)
        running = lambda: task_instances(airflow, first, "flight")["slow"]["state"] == "running"  # noqa: E731
        deadline = time.monotonic() + 120
        while not running():
            assert time.monotonic() < deadline, task_instances(airflow, first, "flight")
            time.sleep(0.5)
        time.sleep(3)  # the worker holds the lease and its container runs
        second = airflow.trigger("flight", conf)
        for run_id in (first, second):
            assert airflow.finished("flight", run_id, timeout=300) == "success", airflow.log.read_text()[
                -3000:
            ]
        waited = task_instances(airflow, second, "flight")["slow"]
        assert waited["queued_when"] is None and not waited["hostname"], waited  # never on a worker
        value, ran = xcom(airflow, second, "slow", "flight"), xcom(airflow, first, "slow", "flight")
        assert ran["reused"] is False and value["reused_from"] == ran["execution_id"]
        logs = [
            p
            for p in (airflow.home / "home" / "logs").rglob("*.log")
            if second in str(p) and "task_id=slow" in str(p)
        ]
        said = "\n".join(p.read_text() for p in logs)
        assert "an identical execution is running in" in said and "waiting for it" in said, said[-2000:]
        assert f"REUSED execution {ran['execution_id']}" in said
        filters = {
            "type": "container",
            "event": "start",
            "label": ["io.valohai-reuse.dag-id=flight", "io.valohai-reuse.task-id=slow"],
        }
        events = docker_client.api.events(
            since=int(since), until=int(time.time()) + 1, decode=True, filters=filters
        )
        assert len(list(events)) == 1  # the slow node ran once for both runs
    finally:
        airflow.stop()
