"""``valohai-reuse check`` and ``db upgrade``: what a deployment verifies and prepares before its first run.

A task falls open when the cache database cannot be reached (a warning, and the node runs); these
say the same problems loudly, once, where whoever deploys sees them: the cache database (its driver,
reaching it, its schema), the artifact store (a probe written and removed), the work folder and the
Docker daemon.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from airflow_valohai_reuse.cache.schema import SCHEMA_VERSION, migrate, schema_info
from airflow_valohai_reuse.cache.timeouts import bounded_engine
from airflow_valohai_reuse.cache.urls import hidden, normalise
from airflow_valohai_reuse.errors import first_line
from airflow_valohai_reuse.operators.orphans import connect
from airflow_valohai_reuse.settings import Settings
from airflow_valohai_reuse.stores.registry import open_store

#: the bound on each wait of ``db upgrade``: run once at deployment, it may wait for a slow database
UPGRADE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Finding:
    what: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}: {self.detail}"


def _schema_state(version: int | None) -> tuple[bool, str]:
    if version is None:
        return True, "reachable, empty (run `valohai-reuse db upgrade`, or the first node creates the schema)"
    if version > SCHEMA_VERSION:
        return False, f"schema version {version} is newer than this package's {SCHEMA_VERSION}: upgrade it"
    if version < SCHEMA_VERSION:
        upgrade = f"`valohai-reuse db upgrade` makes it {SCHEMA_VERSION}"
        return True, f"reachable, schema version {version} ({upgrade})"
    return True, f"reachable, schema version {version}"


def check_cache(settings: Settings) -> Finding:
    """The driver loads, the database answers, and its schema is one this package can use."""
    from sqlalchemy import inspect, select

    url = settings.sql_alchemy_conn
    what = f"cache database {hidden(normalise(url))}"
    if url.startswith("sqlite") and not _sqlite_file(url).exists():
        folder = _sqlite_file(url).parent
        ok = os.access(folder if folder.is_dir() else folder.parent, os.W_OK)
        return Finding(what, ok, "not created yet; created on first use" if ok else f"{folder} not writable")
    try:
        engine = bounded_engine(url, settings.cache_timeout_seconds)
        try:
            with engine.connect() as conn:
                version = None
                if inspect(conn).has_table(schema_info.name):
                    version = conn.execute(select(schema_info.c.version)).scalar()
        finally:
            engine.dispose()
    except Exception as exc:  # a missing driver, DNS, refused, authentication: each is the finding
        return Finding(what, False, first_line(exc))
    return Finding(what, *_schema_state(version))


def _sqlite_file(url: str) -> Path:
    from sqlalchemy.engine import make_url

    return Path(make_url(url).database or ":memory:")


def check_store(settings: Settings) -> Finding:
    """A probe blob is written, found and deleted: the workers can keep outputs there."""
    what = f"artifact store {settings.artifact_store}"
    body = f"valohai-reuse check {uuid.uuid4()}\n".encode()
    sha256 = hashlib.sha256(body).hexdigest()
    try:
        store = open_store(settings.artifact_store, settings.aws_conn_id)
        with tempfile.TemporaryDirectory(prefix="vr-check-") as tmp:
            probe = Path(tmp) / "probe"
            probe.write_bytes(body)
            uri = store.put(probe, sha256, len(body))
        found = store.exists(uri, len(body), sha256)
        store.delete(uri)
    except Exception as exc:  # a store error, a permission, a refused connection: each is the finding
        return Finding(what, False, f"not writable: {first_line(exc)}")
    if not found:
        return Finding(what, False, f"a probe written to {uri} could not be found again")
    return Finding(what, True, "writable (a probe was written, found and deleted)")


def check_work_dir(settings: Settings) -> Finding:
    what = f"work folder {settings.work_dir}"
    try:
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.work_dir, prefix=".vr-check-"):
            pass
    except OSError as exc:
        return Finding(what, False, f"not writable: {exc}")
    return Finding(what, True, "writable")


def check_docker(settings: Settings) -> Finding:
    what = f"Docker daemon {settings.docker_url or os.environ.get('DOCKER_HOST') or '(local socket)'}"
    try:
        client = connect(settings.docker_url)
        version = client.version().get("Version", "?")
    except Exception as exc:  # refused, missing socket, permission: each is the finding
        return Finding(what, False, f"unreachable: {first_line(exc)}")
    return Finding(what, True, f"reachable, Docker {version}")


CHECKS: tuple[Callable[[Settings], Finding], ...] = (check_cache, check_store, check_work_dir, check_docker)


def check(settings: Settings) -> list[Finding]:
    return [each(settings) for each in CHECKS]


def upgrade(url: str) -> tuple[int, int]:
    """Create or upgrade the cache schema (any number of these at once is safe); (found, now)."""
    engine = bounded_engine(url, UPGRADE_TIMEOUT_S)
    try:
        return migrate(engine), SCHEMA_VERSION
    finally:
        engine.dispose()
