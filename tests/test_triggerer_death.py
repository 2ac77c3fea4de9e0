"""A triggerer killed (SIGKILL) while node tasks started there are deciding, on a real CeleryExecutor
cluster (tests/cluster.py): a new triggerer takes the triggers over, and the run ends as it would
have, every node reused from the same executions, with no node run again and no row or XCom lost."""

from __future__ import annotations

import time

import pytest
from cluster import LABEL, Cluster, container_starts
from cluster_config import IN_TRIGGERER_DAGS

pytestmark = pytest.mark.slow

DAG = "in_triggerer_basic"
NODES = ("prepare", "fit", "report")


def _states(cluster: Cluster, run_id: str) -> dict[str, str | None]:
    status, answer = cluster.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances")
    assert status == 200, answer
    return {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}


def _started(cluster: Cluster, run_id: str, task_id: str) -> bool:
    folder = cluster.logs / f"dag_id={DAG}" / f"run_id={run_id}" / f"task_id={task_id}"
    return any("starting" in p.read_text(errors="replace") for p in folder.glob("*.trigger.*.log"))


def test_a_triggerer_killed_mid_decision_is_replaced_and_the_run_reuses_every_node(tmp_path, docker_client):
    cluster = Cluster(tmp_path / "cluster", extra_dags={"in_triggerer_basic.py": IN_TRIGGERER_DAGS})
    try:
        cluster.start()
        cluster.ready([DAG])
        first = cluster.trigger(DAG)  # every node misses in the triggerer and runs on a worker
        assert cluster.wait_run(DAG, first) == "success"
        ran = {node: cluster.xcom(DAG, first, node) for node in NODES}

        since = time.time()
        second = cluster.trigger(DAG)
        # the trigger has started deciding in this triggerer: kill it then, its event not yet written
        cluster.wait("prepare's trigger started", lambda: _started(cluster, second, "prepare"), timeout=120)
        cluster.kill("triggerer")
        killed_at = _states(cluster, second)
        clock = time.monotonic()
        cluster.start_triggerer()
        assert cluster.wait_run(DAG, second, timeout=400) == "success", cluster.tails()
        assert killed_at["prepare"] == "deferred", killed_at  # the task was the dead triggerer's
        print(f"\nthe run ended {time.monotonic() - clock:.0f} s after the triggerer was replaced")
        assert container_starts(docker_client, since, {f"{LABEL}.run-id": second}) == []
        for node in NODES:
            value = cluster.xcom(DAG, second, node)
            assert isinstance(value, dict) and value["reused"] is True, (node, value)
            assert value["reused_from"] == ran[node]["execution_id"], node
        status, run = cluster.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{second}")
        assert status == 200 and run["note"].startswith("3/3 reused"), run
    finally:
        cluster.stop()
