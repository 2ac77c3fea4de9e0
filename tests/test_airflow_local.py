"""scripts/airflow-local.sh: one command starts a local Airflow on loopback with the example DAG
unpaused; a run triggered through the REST API succeeds; Ctrl-C stops every process it started."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DAG = "nightly-training"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(url: str, method: str = "GET", token: str | None = None, body: dict | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _wait(what: str, done, process: subprocess.Popen, log: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while not (result := done()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout} s\n{log.read_text()[-3000:]}")
        time.sleep(1)
    return result


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
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {"AIRFLOW_LOCAL_PORT": str(port), "AIRFLOW_LOCAL_HOME": str(tmp_path / "home")}
    log = tmp_path / "airflow-local.log"
    # as from a terminal: SIGINT is not ignored (a background job of a script would ignore it)
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "airflow-local.sh")],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    started = time.monotonic()
    children: list[psutil.Process] = []
    try:
        _wait("example DAG unpaused", lambda: "is unpaused" in log.read_text(), process, log, 240)
        ready_s = time.monotonic() - started
        password = re.search(r"login: admin / (\S+)", log.read_text()).group(1)
        url = f"http://127.0.0.1:{port}"
        token = _call(f"{url}/auth/token", "POST", body={"username": "admin", "password": password})
        token = token["access_token"]
        assert _call(f"{url}/api/v2/dags/{DAG}", token=token)["is_paused"] is False
        run = _call(f"{url}/api/v2/dags/{DAG}/dagRuns", "POST", token, {"logical_date": None})
        run_url = f"{url}/api/v2/dags/{DAG}/dagRuns/{run['dag_run_id']}"
        state = _wait(
            "run finished",
            lambda: (s := _call(run_url, token=token)["state"]) in ("success", "failed") and s,
            process,
            log,
            180,
        )
        assert state == "success"
        children = psutil.Process(process.pid).children(recursive=True)
        assert _listening(children) == {("127.0.0.1", port)}
    finally:
        process.send_signal(signal.SIGINT)
        stopping = time.monotonic()
        code = process.wait(timeout=90)
    stop_s = time.monotonic() - stopping
    assert code == 130, log.read_text()[-3000:]
    assert [p.pid for p in children if _alive(p)] == []
    assert "stopped" in log.read_text()
    print(f"ready in {ready_s:.0f} s, stopped in {stop_s:.0f} s, {len(children)} processes")
