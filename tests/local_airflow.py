"""scripts/airflow-local.sh as a test fixture: a real Airflow (API server, scheduler, dag-processor,
triggerer) on a free loopback port with the example pipelines, its own home, reached through the REST
API with the login the script prints."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "airflow-local.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, method: str = "GET", token: str | None = None, body: dict | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def status(url: str, token: str | None = None) -> tuple[int, bytes]:
    """A GET's status and body, errors included."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait(what: str, done: Callable[[], Any], process: subprocess.Popen, log: Path, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := done()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout} s\n{log.read_text()[-3000:]}")
        time.sleep(1)
    return result


class LocalAirflow:
    """The script started as from a terminal (SIGINT stops it), ready once the example DAG is unpaused."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env |= {"AIRFLOW_LOCAL_PORT": str(self.port), "AIRFLOW_LOCAL_HOME": str(home / "home")}
        self.env |= env or {}
        self.log = home / "airflow-local.log"
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [str(SCRIPT)],
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.token = ""
        self.password = ""

    def ready(self, timeout: float = 240) -> LocalAirflow:
        wait(
            "example DAG unpaused",
            lambda: "is unpaused" in self.log.read_text(),
            self.process,
            self.log,
            timeout,
        )
        match = re.search(r"login: admin / (\S+)", self.log.read_text())
        assert match is not None, self.log.read_text()
        self.password = match.group(1)
        body = {"username": "admin", "password": self.password}
        self.token = call(f"{self.url}/auth/token", "POST", body=body)["access_token"]
        return self

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> Any:
        return call(f"{self.url}/api/v2/{path}", method, self.token, body)

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        run = self.api(f"dags/{dag_id}/dagRuns", "POST", {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def finished(
        self, dag_id: str, run_id: str, timeout: float = 180, state: Callable[[], str] | None = None
    ) -> str:
        """The run's final state, read through ``api`` or, where another client reads it, ``state``."""
        path = f"dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}"
        read = state or (lambda: self.api(path)["state"])
        return wait(
            f"run {run_id} finished",
            lambda: (s := read()) in ("success", "failed") and s,
            self.process,
            self.log,
            timeout,
        )

    def stop(self, timeout: float = 90) -> int:
        """Ctrl-C, as a user stops it; returns the script's exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=30)
