"""Single flight across workers: identical nodes in flight at once run one container.

Every run here is a separate ``airflow dags test`` process with its own Airflow home (a "worker");
they share one PostgreSQL cache and one artifact store. The running container is paused while the
other runs arrive, so that they overlap however slowly this machine starts them.
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from workers import Worker, container_events, kill_group, pause_first, wait_for_container

from airflow_valohai_reuse.cache.executions import ExecutionCache

pytestmark = pytest.mark.slow

FLIGHT = Path(__file__).resolve().parent / "pipelines" / "flight"
LABEL = "io.valohai-reuse"
WAITING = "an identical execution is running in"
HOLD_S = 10  # long enough for the test to pause the container however loaded the machine is


@pytest.fixture
def fleet(tmp_path, postgres_url):
    """Make workers sharing one PostgreSQL cache, one local artifact store and a short lease.

    The cache database is new and empty: the workers are the first to open it (and create its
    schema, all at once), through the URL written the common way, a bare ``postgresql://``.
    """
    prefix = f"sf{uuid.uuid4().hex[:6]}_"
    env = {
        "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": "postgresql://" + postgres_url.split("://", 1)[1],
        "AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE": (tmp_path / "artifacts").as_uri(),
        "AIRFLOW__VALOHAI_REUSE__DAG_ID_PREFIX": prefix,
        "AIRFLOW__VALOHAI_REUSE__LEASE_SECONDS": "6",
        "AIRFLOW__VALOHAI_REUSE__LEASE_POLL_SECONDS": "0.5",
    }
    runs = []

    def make(count: int) -> list[Worker]:
        workers = [Worker.create(tmp_path, f"worker-{i}", FLIGHT, env) for i in range(count)]
        for worker in workers:
            original = worker.start

            def start(dag_id, conf=None, _original=original):
                runs.append(_original(dag_id, conf))
                return runs[-1]

            worker.start = start
        return workers

    make.dag_id = f"{prefix}flight"
    make.cache = lambda: ExecutionCache(postgres_url)  # opened after the workers have
    yield make
    for run in runs:
        kill_group(run)


def _leases(cache: ExecutionCache) -> int:
    with cache.engine.connect() as conn:
        return conn.execute(text("select count(*) from vr_leases")).scalar()


def _task(dag_id: str, task_id: str) -> dict[str, str]:
    return {f"{LABEL}.dag-id": dag_id, f"{LABEL}.task-id": task_id}


def test_eight_identical_runs_start_one_container_each_node(fleet, docker_client):
    workers = fleet(8)
    since = time.time()
    runs = [worker.start(fleet.dag_id, {"seconds": HOLD_S}) for worker in workers]
    container = pause_first(docker_client, since, _task(fleet.dag_id, "slow"))
    holders = [run for run in runs if "Starting docker container" in run.output()]
    assert len(holders) == 1
    for run in runs:
        if run is not holders[0]:
            run.wait_for(WAITING, timeout=240)
    paused_at = time.time()
    container.unpause()
    assert [run.wait() for run in runs] == [0] * 8, "\n".join(r.output()[-3000:] for r in runs)
    print(f"\n8 runs: all done {time.time() - paused_at:.1f} s after the held container resumed")

    for task_id in ("slow", "after"):
        started = container_events(docker_client, since, _task(fleet.dag_id, task_id))
        assert len(started) == 1, f"{task_id}: {len(started)} containers for 8 identical runs"
        (entry,) = fleet.cache().entries(step=task_id)
        published = [value for worker in workers for value in worker.xcom(task_id, "valohai_execution")]
        assert len(published) == 8
        assert {value["execution_id"] for value in published} == {entry.id}
        assert sum(value["reused"] for value in published) == 7
    assert _leases(fleet.cache()) == 0


def test_lease_of_a_dead_worker_is_taken_over_after_it_expires(fleet, docker_client):
    dead, alive = fleet(2)
    since = time.time()
    doomed = dead.start(fleet.dag_id, {"seconds": HOLD_S})
    first = pause_first(docker_client, since, _task(fleet.dag_id, "slow"))
    survivor = alive.start(fleet.dag_id, {"seconds": HOLD_S})
    survivor.wait_for(WAITING, timeout=120)

    kill_group(doomed)  # the worker dies; its host takes the container with it
    killed = time.time()
    first.remove(force=True)
    taken = wait_for_container(docker_client, killed, _task(fleet.dag_id, "slow"), timeout=120)
    takeover_s = taken["timeNano"] / 1e9 - killed
    assert survivor.wait() == 0, survivor.output()[-3000:]
    print(f"\nlease takeover: the survivor's container started {takeover_s:.1f} s after the kill")

    assert "taking over the lease of" in survivor.output()
    (entry,) = fleet.cache().entries(step="slow")
    assert entry.id == alive.xcom("slow", "valohai_execution")[0]["execution_id"]
    assert entry.run_id == taken["Actor"]["Attributes"][f"{LABEL}.run-id"]
    assert dead.xcom("slow", "valohai_execution") == []
    assert _leases(fleet.cache()) == 0


def test_cancelled_run_records_nothing_and_frees_its_lease(fleet, docker_client):
    (worker,) = fleet(1)
    since = time.time()
    run = worker.start(fleet.dag_id, {"seconds": 60})
    first = wait_for_container(docker_client, since, _task(fleet.dag_id, "slow"))
    run.signal(signal.SIGTERM)  # what a worker does to a task marked failed or cleared while running
    wait_for_container(docker_client, since, _task(fleet.dag_id, "slow"), event="die", timeout=60)
    run.wait(timeout=120)
    assert worker.task_states("slow") == ["failed"]
    assert "Stopping docker container" in run.output()
    assert docker_client.containers.list(filters={"id": first["id"]}) == []
    assert fleet.cache().entries(live=False) == []
    assert _leases(fleet.cache()) == 0
    with create_engine(str(fleet.cache().engine.url)).connect() as conn:
        assert conn.execute(text("select count(*) from vr_executions")).scalar() == 0
