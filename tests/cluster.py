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

This module starts, waits on and stops the processes; what they are configured with is in
``cluster_config.py``, the REST API's calls in ``cluster_rest.py`` (both parts of :class:`Cluster`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster_config import BIN, HOSTNAME_MODULE, POSTGRES, REDIS, ClusterConfig, free_port
from cluster_rest import ClusterRest

LABEL = "io.valohai-reuse"


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
class Cluster(ClusterConfig, ClusterRest):
    """Start with :meth:`start`; always :meth:`stop` (it also drops the databases it made)."""

    components: dict[str, Component] = field(default_factory=dict)
    killed: set[str] = field(default_factory=set)  # components stopped on purpose

    def __post_init__(self) -> None:
        super().__post_init__()
        self._token = None
        self._created: list[str] = []

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
        self.start_triggerer()
        for worker in self.workers:
            self.start_worker(worker)
        return self

    def start_triggerer(self) -> Component:
        self.killed.discard("triggerer")
        command = [str(BIN / "airflow"), "triggerer", "--skip-serve-logs"]
        return self._spawn("triggerer", command, self._env(self.base / "control"))

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
                # the queue, and kombu's record of its exchange's bindings
                _redis("DEL", queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")

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

    def kill_worker(self, worker: str) -> None:
        """SIGKILL to the worker and every process it started, as when its machine dies.

        Its group is not enough: Airflow's supervisor puts each task process in a group of its own.
        """
        self.kill(worker)

    def kill(self, name: str) -> None:
        """SIGKILL to a component and every process it started."""
        import psutil

        self.killed.add(name)
        root = psutil.Process(self.components[name].process.pid)
        doomed = [root, *root.children(recursive=True)]
        for process in doomed:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(doomed, timeout=30)
        self.components[name].process.wait(timeout=30)

    def restart_worker(self, worker: str) -> None:
        self.killed.discard(worker)
        self.start_worker(worker)
        log = self.components[worker].log
        self.wait(f"{worker} ready again", lambda: " ready." in log.read_text(), 180)


def container_starts(client: Any, since: float, labels: dict[str, str]) -> list[dict]:
    """Docker ``start`` events of containers carrying ``labels``, from ``since`` until now."""
    filters = {"type": "container", "event": "start", "label": [f"{k}={v}" for k, v in labels.items()]}
    events = client.api.events(since=int(since), until=int(time.time()) + 1, decode=True, filters=filters)
    return [e for e in events if e["timeNano"] >= since * 1e9]
