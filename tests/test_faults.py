"""Faults: an unreachable cache runs the node, a lost artifact is not reused, PostgreSQL as the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import copy_project, run
from sqlalchemy import create_engine, text

from airflow_valohai_reuse import build_dags

pytestmark = pytest.mark.slow

BASIC = Path(__file__).resolve().parent / "pipelines" / "basic"


@pytest.fixture
def dags(reuse_env):
    return build_dags(copy_project(BASIC, reuse_env / "project") / "valohai.yaml")


def test_unreachable_cache_database_runs_the_node_with_a_warning(dags, docker_client, monkeypatch, capfd):
    monkeypatch.setenv(
        "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN", "postgresql+psycopg2://nobody@127.0.0.1:1/none"
    )
    result = run(dags["basic"], docker_client)
    assert result.state == "success", result.task_states
    assert result.containers_started == 3
    out = capfd.readouterr()
    assert "execution cache unavailable" in out.out + out.err


def test_entry_whose_outputs_are_gone_is_not_reused_and_is_healed(reuse_env, dags, docker_client, capfd):
    first = run(dags["basic"], docker_client)
    model = first.xcoms["fit"]["outputs"][0]
    Path(model["uri"].removeprefix("file://")).unlink()
    second = run(dags["basic"], docker_client)
    assert second.xcoms["prepare"]["reused"] is True
    assert second.xcoms["fit"]["reused"] is False
    out = capfd.readouterr()
    assert f"not reusing execution {first.xcoms['fit']['execution_id']}: outputs missing" in out.out + out.err
    third = run(dags["basic"], docker_client)
    assert third.xcoms["fit"]["reused_from"] == second.xcoms["fit"]["execution_id"]
    assert third.containers_started == 0


def test_local_artifact_changed_in_place_is_not_reused_and_is_healed(reuse_env, dags, docker_client, capfd):
    first = run(dags["basic"], docker_client)
    (model,) = first.xcoms["fit"]["outputs"]
    blob = Path(model["uri"].removeprefix("file://"))
    original = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(bytes(reversed(original)))  # same size, other bytes
    second = run(dags["basic"], docker_client)
    assert second.xcoms["prepare"]["reused"] is True
    assert second.xcoms["fit"]["reused"] is False
    out = capfd.readouterr()
    assert "outputs missing or changed in the store: model.bin" in out.out + out.err
    assert blob.read_bytes() == original  # the rerun's identical output put the right bytes back
    third = run(dags["basic"], docker_client)
    assert third.containers_started == 0


def test_postgresql_cache_reuses_across_runs(dags, docker_client, monkeypatch, postgres_url):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN", postgres_url)
    first = run(dags["basic"], docker_client)
    assert first.containers_started == 3
    second = run(dags["basic"], docker_client)
    assert second.containers_started == 0
    with create_engine(postgres_url).connect() as conn:
        assert conn.execute(text("select count(*) from vr_executions")).scalar() == 3


def test_cache_database_from_an_airflow_connection(dags, docker_client, monkeypatch, postgres_url):
    name = postgres_url.rsplit("/", 1)[1]
    conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": name}
    monkeypatch.setenv("AIRFLOW_CONN_VR_CACHE", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__CACHE_CONN_ID", "vr_cache")
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN", "sqlite:////nonexistent/never-used.db")
    assert run(dags["basic"], docker_client).containers_started == 3
    with create_engine(postgres_url).connect() as conn_:
        assert conn_.execute(text("select count(*) from vr_executions")).scalar() == 3


def test_unreachable_artifact_store_fails_the_miss_clearly_and_records_nothing(
    reuse_env, dags, docker_client, monkeypatch, capfd
):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE", "s3://no-such-bucket/x")
    conn = {"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:1", "region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = run(dags["basic"], docker_client)
    assert result.state == "failed"
    assert result.task_states["prepare"] == "failed"
    out = capfd.readouterr()
    assert "cannot upload clean.txt to s3://no-such-bucket/x/sha256/" in out.out + out.err
    with create_engine(f"sqlite:///{reuse_env / 'cache.db'}").connect() as conn_:
        assert conn_.execute(text("select count(*) from vr_executions")).scalar() == 0
