"""scripts/airflow-local.sh: one command starts a local Airflow on loopback with the example DAG
unpaused; a run triggered through the REST API succeeds; Ctrl-C stops every process it started."""

from __future__ import annotations

import time

import psutil
import pytest
from local_airflow import LocalAirflow

pytestmark = pytest.mark.slow

DAG = "nightly-training"


def _listening(processes: list[psutil.Process]) -> set[tuple[str, int]]:
    addresses = set()
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        addresses |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    return addresses


def _alive(process: psutil.Process) -> bool:
    """Still there: is_running() also tells a reused pid from the process it was."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_one_command_starts_the_example_on_loopback_and_ctrl_c_stops_it(tmp_path, docker_client):
    airflow = LocalAirflow(tmp_path)
    children: list[psutil.Process] = []
    try:
        airflow.ready()
        ready_s = time.monotonic() - airflow.started
        assert airflow.api(f"dags/{DAG}")["is_paused"] is False
        assert airflow.finished(DAG, airflow.trigger(DAG)) == "success"
        children = psutil.Process(airflow.process.pid).children(recursive=True)
        assert _listening(children) == {("127.0.0.1", airflow.port)}
    finally:
        stopping = time.monotonic()
        code = airflow.stop()
    stop_s = time.monotonic() - stopping
    assert code == 130, airflow.log.read_text()[-3000:]
    assert [p.pid for p in children if _alive(p)] == []
    assert "stopped" in airflow.log.read_text()
    print(f"ready in {ready_s:.0f} s, stopped in {stop_s:.0f} s, {len(children)} processes")
