"""A node waiting for an identical execution gives its worker slot back: a real Airflow deployment.

``airflow standalone`` runs the scheduler (LocalExecutor with two slots), the triggerer, the
dag-processor and the API server. Run A's node holds one slot while its container is paused; run B's
identical node defers to the triggerer; a third DAG's task then gets the second slot and finishes
while A still runs. Had B kept its slot, the third task could not start until A ended.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_airflow import free_port, status, wait
from workers import ROOT, pause_first

pytestmark = pytest.mark.slow

FLIGHT = Path(__file__).resolve().parent / "pipelines" / "flight"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
OTHER_DAG = """
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("other_work", schedule=None):
    BashOperator(task_id="quick", bash_command="echo quick")
"""


class Deployment:
    def __init__(self, home: Path) -> None:
        self.home = home
        dags = home / "dags"
        dags.mkdir(parents=True)
        for name in ("valohai_pipelines.py", "valohai_pipelines_check.py"):
            shutil.copy(ROOT / "dags" / name, dags / name)
        shutil.copytree(FLIGHT, dags / "flight")
        (dags / "other_work.py").write_text(OTHER_DAG)
        api = free_port()
        self.api = f"http://localhost:{api}"
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API__PORT": str(api),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'cache.db'}",
            "AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE": (home / "artifacts").as_uri(),
            "AIRFLOW__VALOHAI_REUSE__WORK_DIR": str(home / "work"),
            "AIRFLOW__VALOHAI_REUSE__LEASE_POLL_SECONDS": "1",
        }
        self.env.pop("AIRFLOW__VALOHAI_REUSE__PIPELINES_FOLDER", None)
        self.env.pop("AIRFLOW__VALOHAI_REUSE__DAG_ID_PREFIX", None)
        self.log = home / "standalone.log"
        self.process = subprocess.Popen(
            [AIRFLOW, "standalone"],
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def query(self, sql: str) -> list[tuple]:
        try:
            with sqlite3.connect(self.home / "airflow.db", timeout=30) as db:
                return db.execute(sql).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []

    def wait(self, what: str, done, timeout: float = 240) -> None:
        wait(what, done, self.process, self.log, timeout)

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        out = subprocess.run(
            [AIRFLOW, "dags", "trigger", dag_id, "-c", json.dumps(conf or {}), "-o", "json"],
            env=self.env,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        (line,) = [line for line in out.stdout.splitlines() if line.startswith("[{")]
        return json.loads(line)[0]["dag_run_id"]

    def state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        rows = self.query(
            f"select state from task_instance where dag_id = '{dag_id}' and run_id = '{run_id}' "
            f"and task_id = '{task_id}'"
        )
        return rows[0][0] if rows else None

    def stop(self) -> None:
        """Every process of the deployment: asked to stop, then killed if still there."""
        group = self.process.pid
        for signum, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(group, signum)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.process.poll()
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        return status(url)[0] == 200
    except OSError:  # not listening yet
        return False


@pytest.fixture
def deployment(tmp_path):
    running = Deployment(tmp_path / "home")
    yield running
    running.stop()


def test_waiting_node_defers_and_frees_its_worker_slot(deployment, docker_client):
    deployment.wait(
        "both DAGs parsed",
        lambda: {r[0] for r in deployment.query("select dag_id from dag")} >= {"flight", "other_work"},
    )
    # the tasks' Execution API calls go to the API server, which may start after the DAGs are parsed
    deployment.wait("API server", lambda: _answers(f"{deployment.api}/api/v2/monitor/health"))
    since = time.time()
    run_a = deployment.trigger("flight", {"seconds": 10})
    container = pause_first(docker_client, since, {"io.valohai-reuse.run-id": run_a})
    # A keeps its worker slot as long as the test wants
    try:
        run_b = deployment.trigger("flight", {"seconds": 10})
        deployment.wait("B deferred", lambda: deployment.state("flight", run_b, "slow") == "deferred")
        other = deployment.trigger("other_work")
        deployment.wait(
            "other task done", lambda: deployment.state("other_work", other, "quick") == "success"
        )
        assert deployment.state("flight", run_a, "slow") == "running"
        assert deployment.state("flight", run_b, "slow") == "deferred"
    finally:
        container.unpause()
    for run in (run_a, run_b):
        deployment.wait(f"{run} done", lambda run=run: deployment.state("flight", run, "after") == "success")

    with sqlite3.connect(deployment.home / "cache.db") as cache:
        assert cache.execute("select count(*) from vr_executions where step = 'slow'").fetchone() == (1,)
    b_started = [
        e
        for e in docker_client.api.events(
            since=int(since),
            until=int(time.time()),
            decode=True,
            filters={"type": "container", "event": "start", "label": f"io.valohai-reuse.run-id={run_b}"},
        )
    ]
    assert b_started == []  # B reused A's executions of both nodes
