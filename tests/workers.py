"""Separate Airflow "workers": each its own AIRFLOW_HOME, metadata DB and process, sharing a cache.

Each run is a real ``airflow dags test`` subprocess, so runs on different workers overlap in time,
die, or are cancelled independently of the test process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def migrated_home(base: Path) -> Path:
    """One migrated metadata database, copied into each worker's home (a migration is slow)."""
    home = base / "template-home"
    if not (home / "airflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AIRFLOW_HOME": str(home), **_metadata_db(home)}
        subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    return home


def _metadata_db(home: Path) -> dict[str, str]:
    return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}


@dataclass
class Run:
    process: subprocess.Popen
    log: Path
    started: float

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 300) -> int:
        return self.process.wait(timeout=timeout)

    def wait_measured(self) -> tuple[int, int]:
        """Wait for the run; its exit code and its process's peak resident memory in bytes."""
        _, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        return self.process.returncode, usage.ru_maxrss * 1024

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.process.poll() is not None:
                raise AssertionError(f"run ended before logging {text!r}:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in {timeout} s:\n{self.output()[-4000:]}")
            time.sleep(0.2)

    def signal(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)


@dataclass
class Worker:
    """An Airflow home with its own DAG folder copy of the pipelines and its own metadata DB."""

    name: str
    home: Path
    env: dict[str, str] = field(default_factory=dict)
    runs: int = 0

    @classmethod
    def create(cls, base: Path, name: str, pipelines: Path, env: dict[str, str]) -> Worker:
        home = base / name
        (home / "dags").mkdir(parents=True)
        shutil.copy(migrated_home(base) / "airflow.db", home / "airflow.db")
        for dag_file in ("valohai_pipelines.py", "valohai_pipelines_check.py"):
            shutil.copy(ROOT / "dags" / dag_file, home / "dags" / dag_file)
        shutil.copytree(pipelines, home / "dags" / "pipelines")
        worker_env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__VALOHAI_REUSE__WORK_DIR": str(home / "work"),
            **_metadata_db(home),
            **env,
        }
        worker_env.pop("AIRFLOW__VALOHAI_REUSE__PIPELINES_FOLDER", None)
        return cls(name, home, worker_env)

    def start(self, dag_id: str, conf: dict[str, Any] | None = None) -> Run:
        """``airflow dags test`` in its own process group, its output in a log file."""
        self.runs += 1
        log = self.home / f"run-{self.runs}.log"
        command = [AIRFLOW, "dags", "test", dag_id, "-c", json.dumps(conf or {})]
        with log.open("w") as out:
            process = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return Run(process, log, time.monotonic())

    def task_states(self, task_id: str) -> list[str]:
        """The state of ``task_id`` in every run this worker made."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute("select state from task_instance where task_id = ?", (task_id,))
            return [state for (state,) in rows]

    def xcom(self, task_id: str, key: str) -> list[Any]:
        """The values of one XCom in every run this worker made."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute("select value from xcom where task_id = ? and key = ?", (task_id, key))
            return [json.loads(value) for (value,) in rows]


def kill_group(run: Run) -> None:
    with contextlib.suppress(ProcessLookupError):
        run.signal(signal.SIGKILL)
    run.process.wait(timeout=30)


def container_events(client: Any, since: float, labels: dict[str, str], event: str = "start") -> list[dict]:
    """Docker events of containers carrying ``labels``, from ``since`` until now."""
    filters = {
        "type": "container",
        "event": event,
        "label": [f"{key}={value}" for key, value in labels.items()],
    }
    return list(client.api.events(since=int(since), until=int(time.time()), decode=True, filters=filters))


def wait_for_container(
    client: Any, since: float, labels: dict[str, str], event: str = "start", timeout: float = 180
) -> dict:
    """The first such event at or after ``since`` (seconds since the epoch, fractional)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in container_events(client, since, labels, event) if e["timeNano"] >= since * 1e9]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no container {event} with labels {labels} in {timeout} s")


def pause_first(client: Any, since: float, labels: dict[str, str]) -> Any:
    """Pause the first container started with ``labels``, so that its node keeps running."""
    from docker.errors import APIError

    started = wait_for_container(client, since, labels)
    try:
        container = client.containers.get(started["id"])
        container.pause()
    except APIError as exc:
        raise AssertionError(f"the container ended before it could be paused: {exc}") from exc
    return container
