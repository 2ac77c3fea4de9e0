"""A real Airflow 3.3 CeleryExecutor cluster on this machine, sharing one reuse cache.

Redis (127.0.0.1:6379) is the broker; the local PostgreSQL holds Airflow's metadata database and, as
a second database, the execution cache (created by ``valohai-reuse db upgrade``, as a deployment's
init step does, and named by a bare ``postgresql://`` URL); artifacts go to an S3-compatible server
(moto) on loopback. The API server, scheduler, dag-processor and triggerer share one Airflow home
(the "control" host); each ``airflow celery worker`` has its own home, DAG folder copy and work
folder, a distinct hostname (``[core] hostname_callable``, shown in the UI), log server port and
Celery node name, and a queue of its own besides the shared one. All of them share this machine's
one Docker daemon. Every component runs in its own process group, so that one signal ends it and
the task processes it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PIPELINES = ROOT / "tests" / "pipelines"
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
REDIS = ("127.0.0.1", 6379)
LABEL = "io.valohai-reuse"

HOSTNAME_MODULE = '''
"""[core] hostname_callable of the test cluster's workers: each worker's own name."""
import os
import socket


def hostname() -> str:
    return os.environ.get("VR_CLUSTER_HOSTNAME") or socket.getfqdn()
'''

# the same pipelines once more per worker, routed to that worker's queue: placement the tests choose;
# a task whose worker died is retried once
PINNED_DAGS = '''
"""The test pipelines once per worker, each task on that worker's own Celery queue."""
from datetime import timedelta
from pathlib import Path

from airflow_valohai_reuse import build_dags

HERE = Path(__file__).parent
for worker, queue in {workers!r}.items():
    for pipeline in {pipelines!r}:
        prefix = "on_" + worker.replace("-", "_") + "_"
        kwargs = {{"queue": queue, "retries": 1, "retry_delay": timedelta(seconds=1)}}
        path = HERE / "pipelines" / pipeline / "valohai.yaml"
        globals().update(build_dags(path, dag_id_prefix=prefix, operator_kwargs=kwargs))
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _admin(sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def _redis(*command: str) -> Any:
    """One command to the broker, in Redis's wire protocol (no client library needed here)."""
    with socket.create_connection(REDIS, timeout=10) as sock:
        parts = [f"*{len(command)}\r\n"] + [f"${len(c.encode())}\r\n{c}\r\n" for c in command]
        sock.sendall("".join(parts).encode())
        return sock.recv(65536).decode(errors="replace")


@dataclass
class Component:
    name: str
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


@dataclass
class Cluster:
    """Start with :meth:`start`; always :meth:`stop` (it also drops the databases it made)."""

    base: Path
    workers: tuple[str, ...] = ("worker-a", "worker-b")
    pipelines: tuple[str, ...] = ("flight", "basic")
    extra_dags: dict[str, str] = field(default_factory=dict)
    concurrency: int = 2
    settings: dict[str, str] = field(default_factory=dict)
    components: dict[str, Component] = field(default_factory=dict)
    killed: set[str] = field(default_factory=set)  # components stopped on purpose

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.metadata_db, self.cache_db = f"vr_af_{tag}", f"vr_cache_{tag}"
        self.queue = f"vr-{tag}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cache_url = f"postgresql://postgres@127.0.0.1:5432/{self.cache_db}"  # the bare form
        self.logs = self.base / "logs"  # one log folder for all, as a shared volume would be
        self._token: str | None = None
        self._created: list[str] = []

    # ---- set-up ---------------------------------------------------------------------------
    def _dag_folder(self, home: Path) -> Path:
        dags = home / "dags"
        dags.mkdir(parents=True)
        for name in ("valohai_pipelines.py", "valohai_pipelines_check.py"):
            shutil.copy(ROOT / "dags" / name, dags / name)
        for pipeline in self.pipelines:
            shutil.copytree(PIPELINES / pipeline, dags / "pipelines" / pipeline)
        queues = {worker: self.worker_queue(worker) for worker in self.workers}
        (dags / "on_workers.py").write_text(PINNED_DAGS.format(workers=queues, pipelines=self.pipelines))
        for name, text in self.extra_dags.items():
            (dags / name).write_text(text)
        return dags

    def worker_queue(self, worker: str) -> str:
        return f"{self.queue}-{worker}"

    def _env(self, home: Path) -> dict[str, str]:
        metadata = f"{POSTGRES}/{self.metadata_db}"
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "_AIRFLOW")) and key != "PYTHONPATH"
        }
        env |= {
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "PYTHONPATH": str(self.base),  # the hostname callable
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata}",
            # the worker loads what node tasks import before it forks them
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "airflow_valohai_reuse.celery_preload.CELERY_CONFIG",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.base / "passwords.json"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            # a killed worker's task instance is failed (and retried) this long after its last heartbeat
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": self.cache_url,
            "AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE": "s3://artifacts/store",
            "AIRFLOW__VALOHAI_REUSE__WORK_DIR": str(home / "work"),
            "AIRFLOW__VALOHAI_REUSE__LEASE_SECONDS": "8",
            "AIRFLOW__VALOHAI_REUSE__LEASE_POLL_SECONDS": "1",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing-secret",
                    "extra": {"endpoint_url": self.s3_endpoint, "region_name": "us-east-1"},
                }
            ),
        }
        return env | self.settings

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> Component:
        log = self.base / "components" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.components[name] = Component(name, process, log)
        return self.components[name]

    def _run(self, command: list[str], env: dict[str, str], what: str) -> None:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise AssertionError(f"{what} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    def start(self) -> Cluster:
        self.jwt_secret = secrets.token_hex(32)
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "vr_cluster_host.py").write_text(HOSTNAME_MODULE)
        self._start_s3()
        for name in (self.metadata_db, self.cache_db):
            _admin(f'CREATE DATABASE "{name}"')
            self._created.append(name)
        control = self.base / "control"
        self._dag_folder(control)
        env = self._env(control)
        self._run([str(BIN / "airflow"), "db", "migrate"], env, "airflow db migrate")
        self._run([str(BIN / "valohai-reuse"), "db", "upgrade"], env, "valohai-reuse db upgrade")
        airflow = str(BIN / "airflow")
        self._spawn("api-server", [airflow, "api-server"], env)
        self._spawn("scheduler", [airflow, "scheduler", "--skip-serve-logs"], env)
        self._spawn("dag-processor", [airflow, "dag-processor"], env)
        self._spawn("triggerer", [airflow, "triggerer", "--skip-serve-logs"], env)
        for worker in self.workers:
            self.start_worker(worker)
        return self

    def _start_s3(self) -> None:
        port = free_port()
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        moto = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
        self._spawn("s3", moto, {**os.environ})
        _wait_port(port, 60)
        self.s3().create_bucket(Bucket="artifacts")  # as the compose stack's init does

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing-secret",
        )

    def worker_home(self, worker: str) -> Path:
        return self.base / worker

    def start_worker(self, worker: str) -> Component:
        """``airflow celery worker`` with its own home, DAG folder copy, work folder and names."""
        home = self.worker_home(worker)
        if not (home / "dags").exists():
            self._dag_folder(home)
        env = self._env(home) | {
            "VR_CLUSTER_HOSTNAME": worker,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "vr_cluster_host.hostname",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }
        command = [
            str(BIN / "airflow"),
            "celery",
            "worker",
            "--celery-hostname",
            f"{worker}@%h",
            "--concurrency",
            str(self.concurrency),
            "--queues",
            f"{self.queue},{self.worker_queue(worker)}",
        ]
        return self._spawn(worker, command, env)

    def stop(self, grace: float = 20) -> None:
        """Every component asked to stop at once, then killed with whatever it started."""
        import psutil

        tree: list[psutil.Process] = []
        for component in self.components.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(component.process.pid)
                tree += [root, *root.children(recursive=True)]
            component.signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=grace)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=10)
        for component in self.components.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=5)
        for name in self._created:
            with contextlib.suppress(Exception):
                _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(OSError):
            for queue in (self.queue, *(self.worker_queue(w) for w in self.workers)):
                _redis("DEL", queue)

    # ---- waiting ---------------------------------------------------------------------------
    def wait(self, what: str, done: Callable[[], Any], timeout: float = 240) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = done()
            if result:
                return result
            dead = [c.name for c in self.components.values() if not c.alive() and c.name not in self.killed]
            if dead:
                raise AssertionError(f"{what}: {', '.join(dead)} stopped\n{self.tails()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not reached in {timeout} s\n{self.tails()}")
            time.sleep(0.5)

    def tails(self, chars: int = 1500) -> str:
        return "\n".join(
            f"--- {c.name}\n{c.log.read_text(errors='replace')[-chars:]}" for c in self.components.values()
        )

    def ready(self, dag_ids: list[str], timeout: float = 300) -> None:
        """API server up, the DAGs parsed, and every worker consuming from the broker."""
        self.wait("API server", lambda: self._health(), timeout)
        self.wait("DAGs parsed", lambda: all(self._dag_exists(d) for d in dag_ids), timeout)
        for worker in self.workers:
            self.wait(
                f"{worker} ready", lambda w=worker: " ready." in self.components[w].log.read_text(), timeout
            )

    def _health(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
                return response.status == 200 and (self.base / "passwords.json").exists()
        except OSError:
            return False

    def _dag_exists(self, dag_id: str) -> bool:
        status, _ = self.call("GET", f"/api/v2/dags/{dag_id}")
        return status == 200

    def kill_worker(self, worker: str) -> None:
        """SIGKILL to the worker and every process it started, as when its machine dies.

        Its group is not enough: Airflow's supervisor puts each task process in a group of its own.
        """
        import psutil

        self.killed.add(worker)
        root = psutil.Process(self.components[worker].process.pid)
        doomed = [root, *root.children(recursive=True)]
        for process in doomed:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(doomed, timeout=30)
        self.components[worker].process.wait(timeout=30)

    def restart_worker(self, worker: str) -> None:
        self.killed.discard(worker)
        self.start_worker(worker)
        log = self.components[worker].log
        self.wait(f"{worker} ready again", lambda: " ready." in log.read_text(), 180)

    # ---- REST API --------------------------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            password = json.loads((self.base / "passwords.json").read_text())["admin"]
            body = {"username": "admin", "password": password}
            status, answer = self.call("POST", "/auth/token", body=body, auth=False)
            assert status in (200, 201), (status, answer)
            self._token = answer["access_token"]
        return self._token

    def call(self, method: str, path: str, body: Any = None, auth: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
        except OSError as error:
            return 0, str(error)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        status, run = self.call(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}}
        )
        assert status == 200, (status, run)
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        status, run = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return run["state"] if status == 200 else None

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        return self.wait(
            f"{dag_id}/{run_id} finished",
            lambda: (s := self.run_state(dag_id, run_id)) in ("success", "failed") and s,
            timeout,
        )

    def task(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        status, ti = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return ti if status == 200 else {}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "valohai_execution") -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        status, entry = self.call("GET", path + "?deserialize=true")
        assert status == 200, (status, entry)
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    def task_log(self, dag_id: str, run_id: str, task_id: str, attempt: int = 1) -> str:
        """The task's log file in the shared log folder."""
        path = (
            self.logs
            / f"dag_id={dag_id}"
            / f"run_id={run_id}"
            / f"task_id={task_id}"
            / f"attempt={attempt}.log"
        )
        return path.read_text(errors="replace") if path.exists() else ""


def container_starts(client: Any, since: float, labels: dict[str, str]) -> list[dict]:
    """Docker ``start`` events of containers carrying ``labels``, from ``since`` until now."""
    filters = {"type": "container", "event": "start", "label": [f"{k}={v}" for k, v in labels.items()]}
    events = client.api.events(since=int(since), until=int(time.time()) + 1, decode=True, filters=filters)
    return [e for e in events if e["timeNano"] >= since * 1e9]
