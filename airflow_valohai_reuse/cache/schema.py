"""The cache database's tables and their migrations.

Version 1: executions, file digests. Version 2: invalidation (when, who, why) and expiry columns.
Version 3: leases, so that one worker runs a fingerprint while the others wait for it.
Version 4: the run ledger, which execution each task instance published and how.
Version 5: each execution's metadata series (the values of each key the step printed, in order).
An upgrade adds what is missing and never drops or rewrites an entry.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
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

SCHEMA_VERSION = 5

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
    # version 5: JSON, key -> values; NULL for entries recorded before (they keep only the last values)
    Column("metadata_series", Text),
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

# version 4: one row per task instance (its latest try): what it published, and whether it ran,
# reused or was pinned. Downstream nodes read their upstreams' rows in one query; views read runs.
ledger = Table(
    "vr_ledger",
    metadata,
    Column("dag_id", String(250), primary_key=True),
    Column("run_id", String(250), primary_key=True),
    Column("task_id", String(250), primary_key=True),
    Column("map_index", Integer, primary_key=True),
    Column("try_number", Integer),
    Column("kind", String(16), nullable=False),
    Column("execution_id", String(36), nullable=False, index=True),
    Column("pipeline", String(512), index=True),
    Column("step", String(512)),
    Column("node", String(512)),
    #: a reused or pinned row: the source execution's duration, the compute time this one saved
    Column("saved_s", Float),
    #: a row that ran: why it was not reused, in words
    Column("reason", Text),
    Column("published", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
    # the UI's figures over the last days read only this index (cache/aggregates.py), not the rows
    Index(
        "ix_vr_ledger_window", "recorded_at", "kind", "dag_id", "pipeline", "step", "saved_s", "execution_id"
    ),
)

schema_info = Table(
    "vr_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

_V2_COLUMNS = ("expires_at", "invalidated_at", "invalidated_by", "invalidation_reason")


def _add_columns(conn: Connection, names: tuple[str, ...]) -> None:
    """Add the executions table's columns that are missing (nullable, so existing rows stay as they are)."""
    present = {c["name"] for c in inspect(conn).get_columns("vr_executions")}
    for name in names:
        if name not in present:
            column_type = executions.c[name].type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE vr_executions ADD COLUMN {name} {column_type}"))


def _to_v2(conn: Connection) -> None:
    _add_columns(conn, _V2_COLUMNS)


def _to_v3(conn: Connection) -> None:
    """The lease table is new; ``create_all`` has made it already."""


def _to_v4(conn: Connection) -> None:
    """The ledger table is new; ``create_all`` has made it already."""


def _to_v5(conn: Connection) -> None:
    _add_columns(conn, ("metadata_series",))


MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _to_v2, 3: _to_v3, 4: _to_v4, 5: _to_v5}


def migrate(engine: Engine) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; returns the version found (0: an empty database).

    Safe when any number of processes open an empty or older database at once: they upgrade it one
    after the other under a lock, and each sees what the one before did (PostgreSQL: a
    transaction-scoped advisory lock, the upgrade being one transaction; SQLite: its write lock,
    taken before anything is read). Other databases get no lock: run ``valohai-reuse db upgrade``
    once before the workers start. A new version is its tables in :data:`metadata` and an entry in
    :data:`MIGRATIONS` for what ``create_all`` cannot do (columns of existing tables).
    """
    with engine.connect() as conn:
        recorded = _recorded(conn)
    if recorded == SCHEMA_VERSION:
        return recorded  # the common case: one read, no lock
    with _schema_lock(engine) as conn:
        return _upgrade(conn)


#: the PostgreSQL advisory lock key of schema changes (the bytes of "vr_schem")
_PG_LOCK_KEY = 0x76725F736368656D


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that only one process at a time holds for the schema."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            yield conn
        return
    # the driver's own transactions begin lazily and only before DML; this one holds the write lock
    # (waiting for it up to the busy timeout) before the schema is read
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")


def _recorded(conn: Connection) -> int | None:
    """The version in ``vr_schema``; None where the table or its row is missing."""
    if not inspect(conn).has_table(schema_info.name):
        return None
    row = conn.execute(select(schema_info.c.version)).first()
    return None if row is None else row.version


def _upgrade(conn: Connection) -> int:
    """Under the schema lock; what another process did before it got the lock is not done again."""
    recorded = _recorded(conn)
    found = recorded if recorded is not None else int(inspect(conn).has_table(executions.name))
    if found > SCHEMA_VERSION:
        raise RuntimeError(
            f"the cache database has schema version {found}, newer than this package's "
            f"{SCHEMA_VERSION}; upgrade airflow-valohai-reuse"
        )
    metadata.create_all(conn)
    if recorded is None:
        if found == 0:
            log.info("created the execution cache schema, version %d", SCHEMA_VERSION)
        conn.execute(insert(schema_info).values(id=1, version=found or SCHEMA_VERSION))
    start = found or SCHEMA_VERSION  # an empty database was made at the current version
    for target in range(start + 1, SCHEMA_VERSION + 1):
        log.info("migrating the execution cache schema to version %d", target)
        MIGRATIONS[target](conn)
        conn.execute(update(schema_info).values(version=target))
    return found
