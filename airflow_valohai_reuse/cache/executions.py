"""The execution cache: its own SQLAlchemy engine and tables, never Airflow's metadata DB."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    event,
    insert,
    or_,
    select,
    update,
)

from airflow_valohai_reuse.cache import aggregates, ids, ledger
from airflow_valohai_reuse.cache.schema import executions, migrate
from airflow_valohai_reuse.cache.scope import Scope
from airflow_valohai_reuse.cache.timeouts import bounded_engine
from airflow_valohai_reuse.contracts import Entry, Execution, Output, Published, RunNode, TaskKey
from airflow_valohai_reuse.contracts.manifest import KeptOutputs, outputs_text, text_checksum
from airflow_valohai_reuse.settings import cache_timeout_seconds

SUCCEEDED = "succeeded"


#: columns that hold an Execution's field as it is; the lifecycle ones are set after the record
_COLUMNS = (
    "id", "fingerprint", "fingerprint_version", "step", "pipeline", "node", "dag_id", "run_id", "task_id",
    "started_at", "finished_at", "duration_s", "expires_at",
)  # fmt: skip
_LIFECYCLE = ("invalidated_at", "invalidated_by", "invalidation_reason")
#: the parts of an Execution kept together as JSON in ``exec_metadata``
_DETAILS = ("parameters", "inputs", "environment", "metadata")


def _execution(row: Any) -> Execution:
    details = json.loads(row.exec_metadata)
    return Execution(
        components=json.loads(row.components),
        outputs=[Output.from_dict(o) for o in json.loads(row.outputs)],
        outputs_sha256=text_checksum(row.outputs),
        metadata_series=json.loads(row.metadata_series) if row.metadata_series else {},
        **{name: details.get(name, {}) for name in _DETAILS},
        **{name: getattr(row, name) for name in (*_COLUMNS, *_LIFECYCLE)},
    )


_engines: dict[str, Engine] = {}
#: one lock per URL, held while its engine is made and its schema checked: a cache database that is
#: slow to answer holds up only the callers of its own URL
_making: dict[str, threading.Lock] = {}
_making_lock = threading.Lock()


def _forget_locks() -> None:
    """A forked child starts with free locks: one that another thread held at the fork stays held."""
    global _making, _making_lock
    _making, _making_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_forget_locks)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL, so that readers never wait for a writer (the busy timeout is set by bounded_engine)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL cannot corrupt the file; a power cut may lose the last entries, which a
    # cache can afford, and commits skip an fsync each.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def engine_for(url: str) -> Engine:
    """One engine per URL and process, with the tables created on first use.

    Every wait for the database is bounded by ``cache_timeout_seconds`` (see timeouts.py).
    """
    engine = _engines.get(url)
    if engine is not None:
        return engine
    with _making_lock:
        lock = _making.setdefault(url, threading.Lock())
    with lock:
        engine = _engines.get(url)
        if engine is None:
            engine = bounded_engine(url, cache_timeout_seconds())
            if url.startswith("sqlite"):
                event.listen(engine, "connect", _sqlite_pragmas)
            try:
                migrate(engine)
            except BaseException:
                engine.dispose()  # the next call makes a new engine: this one's connections go now
                raise
            _engines[url] = engine
        return engine


def _live() -> Any:
    """Rows a node may reuse: succeeded, not invalidated, not expired."""
    now = datetime.now(UTC)
    return and_(
        executions.c.status == SUCCEEDED,
        executions.c.invalidated_at.is_(None),
        or_(executions.c.expires_at.is_(None), executions.c.expires_at > now),
    )


class ExecutionCache:
    """Lookups and records of successful executions, and the run ledger. Database errors reach the
    caller: tasks use it through :class:`~airflow_valohai_reuse.cache.failopen.FailOpenCache`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)

    def _one(self, query: Any) -> Execution | None:
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _execution(row) if row else None

    def lookup(self, fingerprint: str) -> Execution | None:
        """The newest successful execution with exactly this fingerprint."""
        return self._one(
            select(executions)
            .where(executions.c.fingerprint == fingerprint, _live())
            .order_by(executions.c.finished_at.desc())
            .limit(1)
        )

    def resolve(self, given: str) -> str:
        """The id of the execution ``given`` (an id, or a unique prefix of one) names; raises
        :class:`~.ids.ExecutionIdError` where it names none or several."""
        with self.engine.connect() as conn:
            return ids.resolve(conn, given)

    def get(self, execution_id: str) -> Execution | None:
        return self._one(select(executions).where(executions.c.id == execution_id, _live()))

    def nearest(self, step: str, before: datetime | None = None) -> Execution | None:
        """The newest successful execution of the same step (finished before ``before``, if given)."""
        query = select(executions).where(executions.c.step == step, _live())
        if before is not None:
            query = query.where(executions.c.finished_at < before)
        return self._one(query.order_by(executions.c.finished_at.desc()).limit(1))

    def record(self, execution: Execution, entry: Entry | None = None) -> None:
        """Record a finished, successful execution (called only after its outputs are stored), and
        the task instance's ledger row in the same transaction."""
        values = {
            **{name: getattr(execution, name) for name in _COLUMNS},
            "status": SUCCEEDED,
            "components": json.dumps(execution.components, sort_keys=True),
            "outputs": outputs_text([o.as_dict() for o in execution.outputs]),
            "exec_metadata": json.dumps(execution.details(), sort_keys=True),
            "metadata_series": json.dumps(execution.metadata_series, sort_keys=True)
            if execution.metadata_series
            else None,
            "finished_at": execution.finished_at or datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(executions).values(**values))
            if entry is not None:
                ledger.write(conn, entry, recorded=True)

    # The run ledger.
    def publish(self, entry: Entry) -> None:
        """The ledger row of a task instance that published an execution it did not record."""
        with self.engine.begin() as conn:
            ledger.write(conn, entry, recorded=entry.published.kind.reused)

    def forget(self, key: TaskKey) -> None:
        """Drop a task instance's row as its new try starts, so no reader sees the old try's."""
        with self.engine.begin() as conn:
            ledger.forget(conn, key)

    def published(self, dag_id: str, run_id: str, task_ids: list[str]) -> dict[str, list[Published]]:
        with self.engine.connect() as conn:
            return ledger.read(conn, dag_id, run_id, task_ids)

    def outputs_of(self, execution_ids: list[str]) -> KeptOutputs:
        """Execution id → the outputs its record holds (a published value's referenced outputs)."""
        with self.engine.connect() as conn:
            return ledger.outputs_of(conn, execution_ids)

    def run_nodes(self, dag_id: str, run_id: str) -> list[RunNode]:
        """What each node of an earlier run of a DAG published (``reuse_from_run``)."""
        with self.engine.connect() as conn:
            return ledger.run_nodes(conn, dag_id, run_id)

    def reuse_counts(self, execution_ids: list[str]) -> dict[str, int]:
        with self.engine.connect() as conn:
            return aggregates.reuse_counts(conn, execution_ids)

    def stats(self, *, since: datetime | None = None, pipeline: str | None = None) -> dict[str, list[dict]]:
        with self.engine.connect() as conn:
            return aggregates.stats(conn, Scope(since, pipeline=pipeline))

    # Lifecycle: listing, invalidating (who and why are kept), what gc may collect.
    def entries(
        self, *, step: str | None = None, pipeline: str | None = None, live: bool = True
    ) -> list[Execution]:
        query = select(executions).where(_live() if live else executions.c.status == SUCCEEDED)
        if step is not None:
            query = query.where(executions.c.step == step)
        if pipeline is not None:
            query = query.where(executions.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(executions.c.finished_at.desc())).all()
        return [_execution(row) for row in rows]

    def invalidate(self, ids: list[str], *, by: str, reason: str) -> int:
        """Mark entries as not reusable; they stay, with when, who and why, for the record."""
        if not ids:
            return 0
        query = (
            update(executions)
            .where(executions.c.id.in_(ids), executions.c.invalidated_at.is_(None))
            .values(invalidated_at=datetime.now(UTC), invalidated_by=by, invalidation_reason=reason)
        )
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount
