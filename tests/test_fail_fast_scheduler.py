"""stop-all in a real deployment: when one node fails, the scheduler stops a parallel node that is still
running (its container too) and the nodes after it never start, as Valohai stops the whole pipeline."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from local_airflow import ROOT, LocalAirflow

pytestmark = pytest.mark.slow

DAG = "stop-all-parallel"


def test_a_failing_node_stops_the_running_parallel_node_and_its_container(tmp_path, docker_client):
    pipelines = tmp_path / "pipelines"
    shutil.copytree(ROOT / "examples", pipelines)
    shutil.copytree(Path(__file__).parent / "pipelines" / "failfast", pipelines / "failfast")
    (pipelines / "failfast" / "valohai-reuse.yaml").write_text("")  # defaults
    airflow = LocalAirflow(tmp_path, {"AIRFLOW_LOCAL_PIPELINES": str(pipelines)})
    try:
        airflow.ready()
        airflow.api(f"dags/{DAG}", "PATCH", {"is_paused": False})
        run_id = airflow.trigger(DAG)
        assert airflow.finished(DAG, run_id, timeout=100) == "failed"  # long before run-long's 120 s
        found = airflow.api(f"dags/{DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]
        states = {ti["task_id"]: ti["state"] for ti in found}
        assert states["fail-soon"] == "failed", states
        assert states["run-long"] in ("failed", "skipped", "upstream_failed"), states  # stopped, not done
        assert states["after"] in ("skipped", "upstream_failed", "removed", None), states
        # run-long's container is stopped with its task (docker stop: a grace period, then SIGKILL)
        label = {"label": f"io.valohai-reuse.run-id={run_id}"}
        deadline = time.monotonic() + 60
        while docker_client.containers.list(filters=label) and time.monotonic() < deadline:
            time.sleep(1)
        assert docker_client.containers.list(filters=label) == []
    finally:
        airflow.stop()
