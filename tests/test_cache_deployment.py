"""A new deployment's cache database: URLs written the common ways, many processes creating or
upgrading its schema at once, ``valohai-reuse db upgrade`` and ``check``, and a task whose cache
cannot be opened running with one warning.

Eight ``airflow dags test`` workers starting identical runs against a database nobody has opened
before, through a bare ``postgresql://`` URL, are tests/test_single_flight.py's first test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from harness import copy_project, run
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from airflow_valohai_reuse.cache.schema import SCHEMA_VERSION
from airflow_valohai_reuse.cache.timeouts import bounded_engine
from airflow_valohai_reuse.cache.urls import CacheDriverMissing, hidden, normalise

ROOT = Path(__file__).resolve().parent.parent
BASIC = Path(__file__).resolve().parent / "pipelines" / "basic"
CLI = str(Path(sys.executable).with_name("valohai-reuse"))
ABSENT_DRIVER = "postgresql+pg8000://postgres@127.0.0.1:5432/test"  # pg8000 is not installed

# each process waits for the go file, then opens the cache (creating or upgrading the schema) and
# records one execution of its own
OPENER = """
import os, sys, time, uuid
from sqlalchemy import event, insert
from airflow_valohai_reuse.cache import executions as cache
from airflow_valohai_reuse.cache.schema import executions, migrate
from airflow_valohai_reuse.cache.timeouts import bounded_engine

url, go = sys.argv[1], sys.argv[2]
engine = bounded_engine(url, 30)
if url.startswith("sqlite"):
    event.listen(engine, "connect", cache._sqlite_pragmas)  # as engine_for does
with engine.connect():
    pass  # connected before the start, so that every process reaches the schema in the same instant
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
migrate(engine)
values = dict(fingerprint="a" * 64, fingerprint_version=1, step="s", status="succeeded",
              components="{}", outputs="[]", exec_metadata="{}")
with engine.begin() as conn:
    conn.execute(insert(executions).values(id=str(uuid.uuid4()), **values))
"""


def test_cache_urls_written_the_common_ways_name_an_installed_driver():
    assert normalise("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert (
        normalise("postgres://u:p@h:5433/db?sslmode=require")
        == "postgresql+psycopg2://u:p@h:5433/db?sslmode=require"
    )
    assert normalise("postgres+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    for kept in ("postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db", "sqlite:////tmp/c.db"):
        assert normalise(kept) == kept
    assert hidden("postgres://u:secret@h/db") == "postgres://u:***@h/db"


def test_missing_driver_is_a_database_error_that_names_the_fix():
    with pytest.raises(CacheDriverMissing) as caught:
        bounded_engine(ABSENT_DRIVER, 5)
    assert isinstance(caught.value, SQLAlchemyError)  # so a task falls open, as for any unreachable database
    message = str(caught.value)
    assert "'pg8000'" in message and "pip install 'airflow-valohai-reuse[postgres]'" in message


def test_every_url_form_opens_the_cache(postgres_url):
    from airflow_valohai_reuse.cache.executions import ExecutionCache, _engines

    rest = postgres_url.split("://", 1)[1]
    forms = {
        f"postgresql://{rest}": "psycopg2",
        f"postgres://{rest}": "psycopg2",
        f"postgresql+psycopg2://{rest}": "psycopg2",
        f"postgresql+psycopg://{rest}": "psycopg",
    }
    try:
        for url, driver in forms.items():
            cache = ExecutionCache(url)
            assert cache.engine.dialect.driver == driver, url
            assert cache.lookup("0" * 64) is None
    finally:
        for url in forms:
            engine = _engines.pop(url, None)
            if engine is not None:
                engine.dispose()


@pytest.mark.slow
def test_unopenable_cache_names_its_cause():
    """DNS, a refused connection, a failed login: each a database error whose first line says which."""
    from airflow_valohai_reuse.cache.executions import ExecutionCache

    causes = {
        "postgresql://postgres@no-such-host.invalid/db": "could not translate host name",
        "postgresql://postgres@127.0.0.1:1/db": "Connection refused",
        "postgresql://no_such_role@127.0.0.1:5432/test": 'role "no_such_role" does not exist',
    }
    for url, cause in causes.items():
        with pytest.raises(SQLAlchemyError) as caught:
            ExecutionCache(url)
        assert cause in str(caught.value).splitlines()[0], url


def _v1(url: str) -> None:
    from test_lifecycle import V1

    with create_engine(url).begin() as conn:
        for statement in V1:
            if url.startswith("postgresql"):
                statement = statement.replace("DATETIME", "TIMESTAMP WITH TIME ZONE")
            conn.execute(text(statement))


def _open_at_once(url: str, count: int) -> list[subprocess.CompletedProcess]:
    go = Path(tempfile.mkdtemp(prefix="vr-go-")) / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready", process.communicate(timeout=30)[1][-3000:]
        go.touch()
        return [
            subprocess.CompletedProcess(p.args, p.wait(timeout=120), "", p.stderr.read()) for p in processes
        ]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
@pytest.mark.parametrize("start", ["empty", "version 1"])
def test_processes_opening_a_new_or_older_database_at_once_end_with_one_schema(
    request, tmp_path, database, start
):
    """Without the schema lock most of these failed with DuplicateTable or a duplicate vr_schema row."""
    if database == "postgresql":
        url = "postgresql://" + request.getfixturevalue("postgres_url").split("://", 1)[1]  # the bare form
        count = 12
    else:
        url, count = f"sqlite:///{tmp_path / 'cache.db'}", 8
    if start == "version 1":
        _v1(url.replace("postgresql://", "postgresql+psycopg2://"))
    results = _open_at_once(url, count)
    assert [r.returncode for r in results] == [0] * count, "\n".join(r.stderr[-2000:] for r in results)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select id, version from vr_schema")).all() == [(1, SCHEMA_VERSION)]
            kept = 1 if start == "version 1" else 0
            assert conn.execute(text("select count(*) from vr_executions")).scalar() == count + kept
            if kept:
                assert (
                    conn.execute(text("select step from vr_executions where id = 'old-1'")).scalar() == "fit"
                )
    finally:
        engine.dispose()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


@pytest.mark.slow
def test_db_upgrade_is_idempotent_and_check_passes_on_a_good_configuration(postgres_url, tmp_path):
    env = {
        "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": "postgres://" + postgres_url.split("://", 1)[1],
        "AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE": (tmp_path / "artifacts").as_uri(),
        "AIRFLOW__VALOHAI_REUSE__WORK_DIR": str(tmp_path / "work"),
    }
    first, again = _cli("db", "upgrade", env=env), _cli("db", "upgrade", env=env)
    assert first.returncode == 0 and again.returncode == 0, first.stderr[-2000:] + again.stderr[-2000:]
    assert f"schema version {SCHEMA_VERSION} (was empty)" in first.stdout
    assert f"schema version {SCHEMA_VERSION} (already current)" in again.stdout
    checked = _cli("check", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr[-2000:]
    lines = checked.stdout.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["ok"] * 4, checked.stdout
    assert f"reachable, schema version {SCHEMA_VERSION}" in lines[0]
    assert lines[-1] == "no problems found"


@pytest.mark.slow
def test_check_reports_each_configuration_problem_and_exits_1(tmp_path):
    broken = {
        "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": ABSENT_DRIVER,
        "AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE": "file:///dev/null/artifacts",
        "AIRFLOW__VALOHAI_REUSE__WORK_DIR": "/dev/null/work",
        "AIRFLOW__VALOHAI_REUSE__DOCKER_URL": f"unix://{tmp_path / 'no-docker.sock'}",
    }
    checked = _cli("check", env=broken)
    assert checked.returncode == 1, checked.stdout + checked.stderr[-2000:]
    lines = checked.stdout.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["FAIL"] * 4, checked.stdout
    cache, store, work, docker = lines[:4]
    assert "needs the driver 'pg8000', which is not installed" in cache
    assert "artifact store file:///dev/null/artifacts: not writable" in store
    assert "work folder /dev/null/work: not writable" in work
    assert "Docker daemon unix://" in docker and "unreachable" in docker
    assert lines[-1] == "4 problem(s)"
    refused = _cli(
        "check",
        env={**broken, "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": "postgresql://postgres@127.0.0.1:1/x"},
    )
    assert refused.returncode == 1 and "Connection refused" in refused.stdout.splitlines()[0]
    upgrade = _cli("db", "upgrade", env=broken)
    assert upgrade.returncode == 1 and "needs the driver 'pg8000'" in upgrade.stderr


@pytest.mark.slow
def test_node_whose_cache_driver_is_missing_runs_with_one_warning(
    reuse_env, docker_client, monkeypatch, capfd
):
    from airflow_valohai_reuse import build_dags

    dags = build_dags(copy_project(BASIC, reuse_env / "project") / "valohai.yaml")
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN", ABSENT_DRIVER)
    result = run(dags["basic"], docker_client)
    assert result.state == "success", result.task_states
    assert result.containers_started == 3
    out = capfd.readouterr()
    warnings = [line for line in (out.out + out.err).splitlines() if "execution cache unavailable" in line]
    assert len(warnings) == 3, warnings  # one per node
    assert all("needs the driver 'pg8000'" in line for line in warnings)
