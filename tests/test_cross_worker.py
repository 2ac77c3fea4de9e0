"""Two workers (two Airflow homes, two copies of the project) share a PostgreSQL cache and an S3
store, and reuse each other's executions."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from workers import Worker, container_events

from airflow_valohai_reuse.cache.executions import ExecutionCache

pytestmark = pytest.mark.slow

BASIC = Path(__file__).resolve().parent / "pipelines" / "basic"
KEY = "valohai_execution"


def _run(worker: Worker, docker_client, dag_id: str, conf: dict | None = None) -> dict:
    """One whole run on ``worker``; what each node published and how many containers started."""
    since = time.time()
    run = worker.start(dag_id, conf)
    assert run.wait() == 0, run.output()[-4000:]
    started = [
        e
        for e in container_events(docker_client, since, {"io.valohai-reuse.dag-id": dag_id})
        if e["timeNano"] >= since * 1e9
    ]
    published = {task: worker.xcom(task, KEY)[-1] for task in ("prepare", "fit", "report")}
    return {"containers": len(started), **published}


def test_two_workers_reuse_each_others_executions(tmp_path, postgres_url, s3, docker_client):
    client, _ = s3
    prefix = f"xw{uuid.uuid4().hex[:6]}_"
    env = {
        "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": postgres_url,
        "AIRFLOW__VALOHAI_REUSE__DAG_ID_PREFIX": prefix,
    }
    a = Worker.create(tmp_path, "worker-a", BASIC, env)
    b = Worker.create(tmp_path, "worker-b", BASIC, env)
    dag_id = f"{prefix}basic"

    first = _run(a, docker_client, dag_id)
    assert first["containers"] == 3
    assert all(first[t]["outputs"][0]["uri"].startswith("s3://artifacts/store/") for t in ("prepare", "fit"))

    other = _run(b, docker_client, dag_id)
    assert other["containers"] == 0
    for task in ("prepare", "fit", "report"):
        assert other[task]["reused"] and other[task]["execution_id"] == first[task]["execution_id"]

    # b runs a changed fit on a's prepare output, which it fetches from the S3 store
    changed = _run(b, docker_client, dag_id, {"epochs": 3})
    assert changed["containers"] == 2
    assert changed["prepare"]["execution_id"] == first["prepare"]["execution_id"]
    assert not changed["fit"]["reused"] and not changed["report"]["reused"]
    (given,) = changed["fit"]["inputs"]["data"]
    (made,) = first["prepare"]["outputs"]
    assert (given["uri"], given["checksum"]) == (made["uri"], made["checksum"])

    back = _run(a, docker_client, dag_id, {"epochs": 3})
    assert back["containers"] == 0
    assert back["fit"]["execution_id"] == changed["fit"]["execution_id"]

    entries = ExecutionCache(postgres_url).entries(pipeline="basic")
    assert sorted(e.step for e in entries) == ["fit", "fit", "prepare", "report", "report"]
    stored = client.list_objects_v2(Bucket="artifacts", Prefix="store/")["KeyCount"]
    assert stored >= 4
