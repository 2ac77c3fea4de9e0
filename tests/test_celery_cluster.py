"""Many workers: a real CeleryExecutor cluster (tests/cluster.py) sharing one reuse cache.

Two ``airflow celery worker`` processes with their own homes, hostnames and work folders take tasks
from Redis; the cache is a brand-new PostgreSQL database named by a bare ``postgresql://`` URL and
initialised by ``valohai-reuse db upgrade``; outputs go to an S3-compatible server on loopback. Runs
are triggered through the REST API. ``on_worker_a_*`` and ``on_worker_b_*`` DAGs are the same
pipelines routed to one worker's own queue, so each test chooses where a node runs; identical nodes
of two DAGs have one fingerprint (the DAG id is no part of it).
"""

from __future__ import annotations

import time

import pytest
from cluster import LABEL, Cluster, container_starts
from docker.errors import NotFound

pytestmark = pytest.mark.slow

A, B = "on_worker_a_", "on_worker_b_"
WAITING = "an identical execution is running in"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, docker_client):
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        started = time.monotonic()
        running.start()
        running.ready([f"{A}basic", f"{B}basic", f"{A}flight", f"{B}flight"])
        print(f"\ncluster ready in {time.monotonic() - started:.0f} s")
        yield running
    finally:
        running.stop()


def _hosts(cluster: Cluster, dag_id: str, run_id: str, tasks: tuple[str, ...]) -> set[str]:
    return {cluster.task(dag_id, run_id, task)["hostname"] for task in tasks}


def test_node_run_on_worker_a_is_reused_on_worker_b(cluster, docker_client):
    tasks = ("prepare", "fit", "report")
    since = time.time()
    run_a = cluster.trigger(f"{A}basic")
    assert cluster.wait_run(f"{A}basic", run_a) == "success"
    assert _hosts(cluster, f"{A}basic", run_a, tasks) == {"worker-a"}
    assert len(container_starts(docker_client, since, {f"{LABEL}.run-id": run_a})) == 3
    ran = {task: cluster.xcom(f"{A}basic", run_a, task) for task in tasks}
    assert all(ran[t]["outputs"][0]["uri"].startswith("s3://artifacts/store/") for t in ("prepare", "fit"))

    since = time.time()
    run_b = cluster.trigger(f"{B}basic")
    assert cluster.wait_run(f"{B}basic", run_b) == "success"
    assert _hosts(cluster, f"{B}basic", run_b, tasks) == {"worker-b"}
    assert container_starts(docker_client, since, {f"{LABEL}.run-id": run_b}) == []
    for task in tasks:
        reused = cluster.xcom(f"{B}basic", run_b, task)
        assert reused["reused"] and reused["execution_id"] == ran[task]["execution_id"], task


def test_identical_nodes_started_at_once_on_two_workers_run_one_container(cluster, docker_client):
    since = time.time()
    conf = {"seconds": 15}
    runs = {
        f"{A}flight": cluster.trigger(f"{A}flight", conf),
        f"{B}flight": cluster.trigger(f"{B}flight", conf),
    }
    for dag_id, run_id in runs.items():
        assert cluster.wait_run(dag_id, run_id) == "success"
    assert {cluster.task(d, r, "slow")["hostname"] for d, r in runs.items()} == {"worker-a", "worker-b"}
    for task in ("slow", "after"):
        started = [
            event
            for run_id in runs.values()
            for event in container_starts(
                docker_client, since, {f"{LABEL}.run-id": run_id, f"{LABEL}.task-id": task}
            )
        ]
        assert len(started) == 1, f"{task}: {len(started)} containers for two identical nodes"
        published = [cluster.xcom(d, r, task) for d, r in runs.items()]
        assert len({p["execution_id"] for p in published}) == 1
        assert sorted(p["reused"] for p in published) == [False, True]
    logs = {cluster.task(d, r, "slow")["hostname"]: cluster.task_log(d, r, "slow") for d, r in runs.items()}
    waited = [host for host, log in logs.items() if WAITING in log]
    assert len(waited) == 1, "the nodes did not overlap: no one waited"
    # the waiting side names the holder's worker as Airflow names it, not the machine both share
    (other,) = set(logs) - set(waited)
    assert f" on {other} (pid " in logs[waited[0]], logs[waited[0]][-2000:]


def _wait_deferred(cluster: Cluster, dag_id: str, run_id: str, task_id: str) -> None:
    cluster.wait(
        f"{dag_id}/{task_id} deferred",
        lambda: cluster.task(dag_id, run_id, task_id).get("state") == "deferred",
    )


def test_killed_worker_loses_its_lease_and_its_container_is_stopped_by_the_takeover(cluster, docker_client):
    """Worker A dies (SIGKILL) while its container runs; B, waiting for the same execution, takes the
    lease over once it expires, stops A's container (the same Docker daemon) and runs the node; A's
    task instance is failed by the scheduler and its retry, on A restarted, reuses B's execution."""
    seconds = 75  # the orphan would run this long if nobody stopped it (and so does B's own container)
    conf = {"seconds": seconds}
    since = time.time()
    run_a = cluster.trigger(f"{A}flight", conf)
    (orphan,) = cluster.wait(
        "A's container started",
        lambda: container_starts(docker_client, since, {f"{LABEL}.run-id": run_a}),
        timeout=180,
    )
    run_b = cluster.trigger(f"{B}flight", conf)
    _wait_deferred(cluster, f"{B}flight", run_b, "slow")

    cluster.kill_worker("worker-a")
    killed = time.time()
    assert docker_client.containers.get(orphan["id"]).status == "running"  # it outlives its worker
    # asked for while it runs: the daemon keeps only its latest events, and other suites add theirs
    (taken,) = cluster.wait(
        "B's container started",
        lambda: container_starts(
            docker_client, killed, {f"{LABEL}.run-id": run_b, f"{LABEL}.task-id": "slow"}
        ),
        timeout=180,
    )
    takeover_s = taken["timeNano"] / 1e9 - killed
    try:
        ended = docker_client.api.inspect_container(orphan["id"])["State"]
        assert not ended["Running"], "A's container still runs beside B's"
    except NotFound:
        pass  # stopped and removed
    assert takeover_s < seconds, "the takeover came after the orphan would have ended anyway"
    assert cluster.wait_run(f"{B}flight", run_b, timeout=240) == "success"
    log_b = cluster.task_log(f"{B}flight", run_b, "slow", attempt=1)
    assert "taking over the lease of" in log_b, log_b[-3000:] + cluster.tails()
    assert "stopping orphan container" in log_b, log_b[-3000:] + cluster.tails()
    ran_b = cluster.xcom(f"{B}flight", run_b, "slow")
    assert ran_b["reused"] is False

    # A's task instance lost its worker: failed after the heartbeat timeout, retried on A restarted
    cluster.restart_worker("worker-a")
    assert cluster.wait_run(f"{A}flight", run_a, timeout=300) == "success"
    retried = cluster.task(f"{A}flight", run_a, "slow")
    assert retried["try_number"] == 2 and retried["hostname"] == "worker-a"
    reused = cluster.xcom(f"{A}flight", run_a, "slow")
    assert reused["reused"] and reused["execution_id"] == ran_b["execution_id"]
    print(f"\nkilled worker: B's container started {takeover_s:.1f} s after the kill; A's run recovered")
