"""The test cluster's configuration: its names, ports and databases, each component's environment
(Airflow's and the plugin's settings), and the DAG folder every host gets a copy of.

:class:`ClusterConfig` is the part of :class:`cluster.Cluster` that only computes and writes files;
starting and stopping the processes is in ``cluster.py``, the REST calls in ``cluster_rest.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PIPELINES = ROOT / "tests" / "pipelines"
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
REDIS = ("127.0.0.1", 6379)

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


# the basic pipeline again, each node starting in the triggerer (decide_in_triggerer)
IN_TRIGGERER_DAGS = '''
"""The basic pipeline once more as DAG in_triggerer_basic, its reuse decided in the triggerer."""
from pathlib import Path

from airflow_valohai_reuse import build_dags

PATH = Path(__file__).parent / "pipelines" / "basic" / "valohai.yaml"
globals().update(build_dags(PATH, dag_id_prefix="in_triggerer_", decide_in_triggerer=True))
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ClusterConfig:
    """What the cluster is made of; ``jwt_secret`` and ``s3_endpoint`` are set as it starts."""

    base: Path
    workers: tuple[str, ...] = ("worker-a", "worker-b")
    pipelines: tuple[str, ...] = ("flight", "basic")
    extra_dags: dict[str, str] = field(default_factory=dict)
    concurrency: int = 2
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.metadata_db, self.cache_db = f"vr_af_{tag}", f"vr_cache_{tag}"
        self.queue = f"vr-{tag}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cache_url = f"postgresql://postgres@127.0.0.1:5432/{self.cache_db}"  # the bare form
        self.logs = self.base / "logs"  # one log folder for all, as a shared volume would be

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

    def worker_home(self, worker: str) -> Path:
        return self.base / worker
