"""Cache lifecycle: schema upgrades keep entries; ls, invalidate, gc and time-to-live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import copy_project, run
from sqlalchemy import create_engine, text

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.lease import Leases
from airflow_valohai_reuse.cache.schema import SCHEMA_VERSION
from airflow_valohai_reuse.contracts import LeaseOwner

pytestmark = pytest.mark.slow

BASIC = Path(__file__).resolve().parent / "pipelines" / "basic"

# The version 1 schema exactly as it was released, to test the upgrade.
V1 = [
    """CREATE TABLE vr_executions (id VARCHAR(36) NOT NULL PRIMARY KEY, fingerprint VARCHAR(64) NOT NULL,
    fingerprint_version INTEGER NOT NULL, step VARCHAR(512) NOT NULL, pipeline VARCHAR(512),
    node VARCHAR(512),
    dag_id VARCHAR(250), run_id VARCHAR(250), task_id VARCHAR(250), status VARCHAR(16) NOT NULL,
    components TEXT NOT NULL, outputs TEXT NOT NULL, exec_metadata TEXT NOT NULL, started_at DATETIME,
    finished_at DATETIME, duration_s FLOAT)""",
    """CREATE TABLE vr_file_digests (path VARCHAR(4096) NOT NULL PRIMARY KEY, inode BIGINT NOT NULL,
    size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, ctime_ns BIGINT NOT NULL, sha256 VARCHAR(64) NOT NULL)""",
    "CREATE TABLE vr_schema (id INTEGER NOT NULL PRIMARY KEY, version INTEGER NOT NULL)",
    "INSERT INTO vr_schema VALUES (1, 1)",
    """INSERT INTO vr_executions VALUES ('old-1', '"""
    + "f" * 64
    + """', 1, 'fit', 'basic', 'fit', 'basic', 'r1', 'fit', 'succeeded', '{}', '[]', '{}',
    '2026-01-01 00:00:00', '2026-01-01 00:01:00', 60.0)""",
]


def test_upgrade_from_schema_1_keeps_every_entry(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with create_engine(url).begin() as conn:
        for statement in V1:
            conn.execute(text(statement))
    cache = ExecutionCache(url)
    entry = cache.lookup("f" * 64)
    assert entry is not None and entry.id == "old-1" and entry.duration_s == 60.0
    with create_engine(url).connect() as conn:
        assert conn.execute(text("select version from vr_schema")).scalar() == SCHEMA_VERSION
        assert conn.execute(text("select count(*) from vr_executions")).scalar() == 1
        assert conn.execute(text("select count(*) from vr_leases")).scalar() == 0
    assert cache.invalidate(["old-1"], by="test", reason="upgrade check") == 1
    assert cache.lookup("f" * 64) is None


def _cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("valohai-reuse")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=os.environ.copy())


@pytest.fixture
def project(reuse_env):
    return copy_project(BASIC, reuse_env / "project")


def test_ls_invalidate_and_gc(reuse_env, project, docker_client):
    dag = build_dags(project / "valohai.yaml")["basic"]
    first = run(dag, docker_client)
    listed = json.loads(_cli("ls", "--json").stdout)
    assert {row["step"] for row in listed} == {"prepare", "fit", "report"}

    out = _cli("invalidate", "--step", "fit", "--reason", "trained on bad data", "--by", "alice")
    assert out.returncode == 0 and "invalidated 1 execution(s)" in out.stdout
    second = run(dag, docker_client)
    assert second.xcoms["prepare"]["reused"] is True
    assert second.xcoms["fit"]["reused"] is False
    everything = json.loads(_cli("ls", "--all", "--json").stdout)
    old_fit = next(r for r in everything if r["execution_id"] == first.xcoms["fit"]["execution_id"])
    assert old_fit["invalidated"] == "alice: trained on bad data"

    blob = Path(second.xcoms["report"]["outputs"][0]["uri"].removeprefix("file://"))
    blob.unlink()
    stray = reuse_env / "artifacts" / "sha256" / "00" / ("0" * 64)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"nobody refers to me")
    leases = Leases(ExecutionCache(f"sqlite:///{reuse_env / 'cache.db'}").engine, seconds=-1)
    leases.acquire("d" * 64, "dead-worker", LeaseOwner(task_id="fit"))  # already expired: its worker died
    dry = _cli("gc", "--dry-run", "--min-age", "0")
    assert "would invalidate 1 execution(s)" in dry.stdout and "would delete 1 unreferenced" in dry.stdout
    assert stray.exists()
    done = _cli("gc", "--min-age", "0")
    assert done.returncode == 0, done.stderr
    assert not stray.exists()
    assert second.xcoms["report"]["execution_id"] in done.stdout
    assert "removed 1 lease(s) left by workers that died" in done.stdout
    assert leases.current("d" * 64) is None and Leases(leases.engine, 60).purge(0) == 0
    third = run(dag, docker_client)
    assert third.xcoms["fit"]["reused"] is True and third.xcoms["report"]["reused"] is False


def test_entries_expire_after_their_time_to_live(project, docker_client):
    (project / "valohai-reuse.yaml").write_text("steps:\n  fit:\n    ttl: 2s\n")
    dag = build_dags(project / "valohai.yaml")["basic"]
    run(dag, docker_client)
    time.sleep(2.5)
    again = run(dag, docker_client)
    assert again.xcoms["prepare"]["reused"] is True
    assert again.xcoms["fit"]["reused"] is False


def test_bad_ttl_is_a_clear_error(project):
    from airflow_valohai_reuse.errors import PipelineFileError

    (project / "valohai-reuse.yaml").write_text("pipelines:\n  basic:\n    ttl: soon\n")
    with pytest.raises(PipelineFileError, match=r"valohai-reuse.yaml at pipelines/basic/ttl: ttl 'soon'"):
        build_dags(project / "valohai.yaml")
