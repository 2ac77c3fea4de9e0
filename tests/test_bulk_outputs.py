"""Huge and numerous outputs are streamed to the store and verified by stat, never held in memory."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from workers import Worker

from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.contracts import MANIFEST_KEY

pytestmark = pytest.mark.slow

BULK = Path(__file__).resolve().parent / "pipelines" / "bulk"
MB = 1 << 20


def test_large_and_numerous_outputs_do_not_grow_the_worker(tmp_path, docker_client):
    prefix = f"bk{uuid.uuid4().hex[:6]}_"
    env = {
        "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'cache.db'}",
        "AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE": (tmp_path / "artifacts").as_uri(),
        "AIRFLOW__VALOHAI_REUSE__DAG_ID_PREFIX": prefix,
    }
    worker = Worker.create(tmp_path, "worker", BULK, env)
    dag_id = f"{prefix}bulk"

    def peak(conf: dict) -> int:
        run = worker.start(dag_id, conf)
        code, rss = run.wait_measured()
        assert code == 0, run.output()[-4000:]
        return rss

    small = peak({"megabytes": 1, "files": 1})
    big = peak({"megabytes": 600, "files": 3000})
    hit = peak({"megabytes": 600, "files": 3000})
    print(
        f"\npeak RSS: tiny miss {small / MB:.0f} MiB, 600 MiB + 3000 files miss {big / MB:.0f} MiB, "
        f"its hit {hit / MB:.0f} MiB"
    )

    _, second, third = worker.xcom("produce", "valohai_execution")
    # 3,001 outputs are referenced by the XCom, and listed once, in the execution's record
    assert second[MANIFEST_KEY]["count"] == 3001 and not second["reused"]
    outputs = ExecutionCache(env["AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN"]).outputs_of(
        [second["execution_id"]]
    )
    _checksum, listed = outputs[second["execution_id"]]
    (blob,) = [o for o in listed if o["name"] == "big.bin"]
    assert blob["size"] == 600 * MB
    assert Path(blob["uri"].removeprefix("file://")).stat().st_size == 600 * MB
    assert third["reused"] and third["execution_id"] == second["execution_id"]
    assert big - small < 150 * MB  # 600 MiB went through the worker without being loaded
    assert hit - small < 150 * MB
