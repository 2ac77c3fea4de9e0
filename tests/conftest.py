"""Test environment: a throwaway AIRFLOW_HOME, a real Docker daemon, real DAG runs.

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it.
"""

from __future__ import annotations

import faulthandler
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from local_airflow import free_port

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
IMAGE = "valohai-reuse-example:busybox"
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
#: fixtures that need Docker, PostgreSQL or a server: a test asking for one is slow
SLOW_FIXTURES = {"docker_client", "postgres_url", "s3"}
#: a test (set-up and teardown included) still going after this long is hung: every thread's stack
#: goes to stderr and the run ends, so that a hang is reported at once instead of using up CI's time
#: (the longest tests take under two minutes; the fresh clone's own bounds add up to 15 minutes)
HUNG_AFTER_S = 1200
_STDERR = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    # the terminal's stderr, not the capture of the test that hangs
    config.stash[_STDERR] = os.dup(sys.__stderr__.fileno())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """End the run, with every thread's stack, if this test hangs: a thread timer in C, which fires
    even while the test waits in a C call that signals cannot interrupt (libpq, a socket)."""
    stderr = item.config.stash[_STDERR]
    faulthandler.dump_traceback_later(HUNG_AFTER_S, exit=True, file=stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark slow what needs Docker or a server even where its module forgot to, before ``-m`` selects."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The throwaway metadata database, migrated once, when the first test that runs Airflow needs it
    (``-m "not slow"`` never does, so the fast subset skips the migration)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )


@pytest.fixture(autouse=True)
def _airflow_db_for_slow_tests(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("slow") is not None:
        request.getfixturevalue("airflow_db")


@pytest.fixture(scope="session")
def docker_client(airflow_db):
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


@pytest.fixture
def postgres_url():
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"vr_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{POSTGRES}/{name}"
    from airflow_valohai_reuse.cache.executions import _engines

    engine = _engines.pop(f"{POSTGRES}/{name}", None)
    if engine is not None:
        engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def s3(tmp_path, monkeypatch):
    """moto's S3 server on loopback, the aws_default connection pointing at it, buckets data and
    artifacts, and the artifact store in s3://artifacts/store. Yields a boto3 client and the log."""
    import boto3

    port = free_port()
    log = tmp_path / "moto.log"
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing-secret",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE", "s3://artifacts/store")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )
    client.create_bucket(Bucket="data")
    client.create_bucket(Bucket="artifacts")
    yield client, log
    server.terminate()
    server.wait(timeout=10)
