"""What a Celery worker makes once before it forks task processes (celery_preload): the cache's engine
with no connection left open, and an S3 client that a task takes only while its connection is the
same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from airflow_valohai_reuse.stores import s3


def _connection(login: str, password: str, endpoint: str = "http://127.0.0.1:9", **extra: str) -> str:
    extras = {"endpoint_url": endpoint, "region_name": "us-east-1", **extra}
    return json.dumps({"conn_type": "aws", "login": login, "password": password, "extra": extras})


@pytest.fixture
def made(monkeypatch):
    """The clients made before a fork, emptied for the test and after it."""
    monkeypatch.setattr(s3, "_made_before_fork", {})
    return s3._made_before_fork


def test_a_task_takes_the_client_made_before_the_fork_while_its_connection_is_the_same(made, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VR_PREFORK", _connection("key", "secret"))
    assert s3.make_before_fork("vr_prefork")
    (before,) = made.values()
    assert s3._client("vr_prefork") is before


def test_a_changed_connection_gets_a_client_of_its_own(made, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VR_PREFORK", _connection("key", "secret"))
    assert s3.make_before_fork("vr_prefork")
    (before,) = made.values()
    monkeypatch.setenv("AIRFLOW_CONN_VR_PREFORK", _connection("key", "rotated"))
    assert s3._client("vr_prefork") is not before
    monkeypatch.setenv("AIRFLOW_CONN_VR_PREFORK", _connection("key", "secret", "http://127.0.0.1:10"))
    moved = s3._client("vr_prefork")
    assert moved is not before
    assert moved.meta.endpoint_url == "http://127.0.0.1:10"


def test_no_client_is_made_before_the_fork_where_credentials_are_not_the_connections_own(made, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_VR_ROLE", _connection("key", "secret", role_arn="arn:aws:iam::123456789012:role/r")
    )
    chain = {"conn_type": "aws", "extra": {"region_name": "us-east-1"}}  # the default credential chain
    monkeypatch.setenv("AIRFLOW_CONN_VR_CHAIN", json.dumps(chain))
    assert not s3.make_before_fork("vr_role")
    assert not s3.make_before_fork("vr_chain")
    assert not s3.make_before_fork("vr_not_in_the_environment")
    assert made == {}


PRELOAD = textwrap.dedent(
    """
    import os, sys
    from sqlalchemy import create_engine, text
    from airflow_valohai_reuse.cache import executions

    import airflow_valohai_reuse.celery_preload  # what the worker imports before forking

    url = os.environ["AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN"]
    assert url in executions._engines, "no engine made before the fork"
    admin = create_engine(sys.argv[1])
    with admin.connect() as conn:
        open_here = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND pid != pg_backend_pid()"),
            {"db": url.rsplit("/", 1)[1]},
        ).scalar()
    admin.dispose()
    print("open before the fork:", open_here, flush=True)

    pid = os.fork()
    if pid == 0:
        from airflow_valohai_reuse.cache.failopen import open_cache

        found = open_cache(url).lookup(sys.argv[2])
        print("found in the task process:", found.id if found else None, flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    """
)


def test_the_preload_opens_the_cache_and_leaves_no_connection_to_the_task_processes(postgres_url):
    """The preload makes the engine and closes its connection before forking; a forked task process
    reads through a connection of its own what another process recorded."""
    from airflow_valohai_reuse.cache.executions import ExecutionCache
    from airflow_valohai_reuse.contracts import Execution

    env = {**os.environ, "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": postgres_url}
    env.pop("AIRFLOW_CONN_AWS_DEFAULT", None)
    execution = Execution(
        id=str(uuid.uuid4()), fingerprint="f" * 64, fingerprint_version=1, step="s", components={}, outputs=[]
    )
    cache = ExecutionCache(postgres_url)
    cache.record(execution)
    cache.engine.dispose()  # this process keeps no connection either: only the preload's would count
    done = subprocess.run(
        [sys.executable, "-c", PRELOAD, postgres_url, execution.fingerprint],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "open before the fork: 0" in done.stdout
    assert f"found in the task process: {execution.id}" in done.stdout
