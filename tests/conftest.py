"""Test environment: a throwaway AIRFLOW_HOME, a real Docker daemon, real DAG runs.

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="vr-airflow-home-"))
(_HOME / "dags").mkdir()
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(_HOME / "dags"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
)

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "valohai-yaml"
IMAGE = "valohai-reuse-example:busybox"


def pytest_sessionstart(session: pytest.Session) -> None:
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )


@pytest.fixture(scope="session")
def docker_client():
    import docker

    client = docker.from_env()
    try:
        client.ping()
    except Exception as exc:  # pragma: no cover - environment problem, reported plainly
        pytest.fail(f"no Docker daemon: {exc}. Start one (see README) before running the tests.")
    if not client.images.list(name=IMAGE):
        subprocess.run([str(ROOT / "scripts" / "build-images.sh")], check=True)
    return client


@pytest.fixture
def reuse_env(tmp_path, monkeypatch):
    """A fresh execution cache, artifact store and work folder for one test."""
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'cache.db'}")
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE", (tmp_path / "artifacts").as_uri())
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__WORK_DIR", str(tmp_path / "work"))
    return tmp_path
