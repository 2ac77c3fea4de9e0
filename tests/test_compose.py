"""docker-compose.yaml, validated by a compose tool (images cannot be pulled here, so it is not run):
a CeleryExecutor stack with Redis, two workers, an S3-compatible store and the cache schema made by
``valohai-reuse db upgrade`` before anything else starts. tests/test_celery_cluster.py runs the same
topology as processes on this machine."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
WORKERS = ("airflow-worker-1", "airflow-worker-2")


def _compose_tool() -> list[str]:
    """Debian's docker-compose (scripts/setup.sh installs it), or Docker's compose plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    pytest.fail("no compose tool: install Debian's docker-compose (scripts/setup.sh does)")


@pytest.fixture(scope="module")
def config() -> dict:
    """The file as the compose tool resolves it (anchors, defaults, the gpu profile included)."""
    done = subprocess.run(
        [*_compose_tool(), "-f", str(ROOT / "docker-compose.yaml"), "--profile", "gpu", "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},  # no VALOHAI_REUSE_* or AIRFLOW_* from here
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


def _command(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else command


def _mounts(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount, in either tool's output form."""
    found = []
    for volume in service["volumes"]:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        found.append((source, target))
    return found


def test_every_airflow_service_runs_the_celery_executor_with_shared_secrets(config):
    envs = [config[name]["environment"] for name in (*AIRFLOW_SERVICES, *WORKERS, "airflow-init")]
    for env in envs:
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
        assert broker.scheme == "redis" and broker.hostname in config  # a service of this file
        assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"].startswith(
            "airflow_valohai_reuse.celery_preload."
        )
        assert env["AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE"].startswith("s3://")
        endpoint = urlsplit(json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"])
        assert endpoint.hostname in config
        assert env["AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN"].startswith("postgresql://")  # the bare form
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        assert len({env[key] for env in envs}) == 1, key
    assert {"postgres", "redis", "s3"} <= set(config)


def test_two_workers_with_their_own_names_and_work_folders(config):
    workers = [config[name] for name in WORKERS]
    assert all(_command(w)[:2] == ["celery", "worker"] for w in workers)
    assert len({w["hostname"] for w in workers}) == 2
    assert len({w["environment"]["AIRFLOW__VALOHAI_REUSE__WORK_DIR"] for w in workers}) == 2
    for worker in workers:
        work = worker["environment"]["AIRFLOW__VALOHAI_REUSE__WORK_DIR"]
        mounts = [source for source, target in _mounts(worker) if source == target]
        assert any(work.startswith(m + "/") for m in mounts), "work folder not at the same path on the host"
        assert "/var/run/docker.sock" in [target for _, target in _mounts(worker)]
        assert worker["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_init_makes_the_bucket_and_the_cache_schema_then_checks(config):
    script = _command(config["airflow-init"])[-1]
    store = config["airflow-init"]["environment"]["AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE"]
    steps = [
        "airflow db migrate",
        f'create_bucket("{urlsplit(store).netloc}")',  # the artifact store's own bucket
        "valohai-reuse db upgrade",
        "valohai-reuse check",
    ]
    assert all(step in script for step in steps)
    assert sorted(steps, key=script.index) == steps
    for name in (*AIRFLOW_SERVICES, *WORKERS):
        assert config[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_gpu_worker_reserves_the_hosts_gpus(config):
    gpu = config["airflow-worker-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    command = _command(gpu)
    assert "gpu" in command[command.index("--queues") + 1].split(",")


def test_image_installs_the_postgres_and_celery_extras():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    installed = re.findall(r"pip install[^\n]*airflow-valohai-reuse\[([\w,]+)\]", dockerfile)
    assert installed and {"postgres", "celery"} <= set(installed[0].split(","))
