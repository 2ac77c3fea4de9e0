"""The cache database's tables and their migrations.

Version 1: executions, file digests. Version 2: invalidation (when, who, why) and expiry columns.
Version 3: leases, so that one worker runs a fingerprint while the others wait for it.
An upgrade adds what is missing and never drops or rewrites an entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
    text,
    update,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3

metadata = MetaData()

executions = Table(
    "vr_executions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("fingerprint", String(64), nullable=False, index=True),
    Column("fingerprint_version", Integer, nullable=False),
    Column("step", String(512), nullable=False, index=True),
    Column("pipeline", String(512)),
    Column("node", String(512)),
    Column("dag_id", String(250)),
    Column("run_id", String(250)),
    Column("task_id", String(250)),
    Column("status", String(16), nullable=False),
    Column("components", Text, nullable=False),
    Column("outputs", Text, nullable=False),
    Column("exec_metadata", Text, nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True), index=True),
    Column("duration_s", Float),
    # version 2
    Column("expires_at", DateTime(timezone=True)),
    Column("invalidated_at", DateTime(timezone=True)),
    Column("invalidated_by", String(256)),
    Column("invalidation_reason", Text),
)

file_digests = Table(
    "vr_file_digests",
    metadata,
    Column("path", String(4096), primary_key=True),
    Column("inode", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("ctime_ns", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
)

# version 3: one row per fingerprint being run; whoever holds it runs, the others wait or take over
# once ``expires_at`` has passed without a heartbeat.
leases = Table(
    "vr_leases",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("holder", String(36), nullable=False),
    Column("owner", Text, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

schema_info = Table(
    "vr_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

_V2_COLUMNS = ("expires_at", "invalidated_at", "invalidated_by", "invalidation_reason")


def _to_v2(conn: Connection) -> None:
    present = {c["name"] for c in inspect(conn).get_columns("vr_executions")}
    for name in _V2_COLUMNS:
        if name not in present:
            column_type = executions.c[name].type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE vr_executions ADD COLUMN {name} {column_type}"))


def _to_v3(conn: Connection) -> None:
    """The lease table is new; ``create_all`` has made it already."""


MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _to_v2, 3: _to_v3}


def migrate(engine: Engine) -> int:
    """Create missing tables and bring the schema to :data:`SCHEMA_VERSION`; returns the old version."""
    existed = inspect(engine).has_table("vr_executions")
    metadata.create_all(engine)
    with engine.begin() as conn:
        row = conn.execute(select(schema_info.c.version)).first()
        if row is None:
            version = 1 if existed else SCHEMA_VERSION
            conn.execute(insert(schema_info).values(id=1, version=version))
        else:
            version = row.version
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the cache database has schema version {version}, newer than this package's "
                f"{SCHEMA_VERSION}; upgrade airflow-valohai-reuse"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            log.info("migrating the execution cache schema to version %d", target)
            MIGRATIONS[target](conn)
            conn.execute(update(schema_info).values(version=target))
    return version
