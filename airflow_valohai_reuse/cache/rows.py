"""What the UI lists from the cache database: pages of rows, and the rows of one execution or run.

Each list is a page (``LIMIT``/``OFFSET``): recorded executions with how often each was reused, and
the task instances that reused one execution, each with its total; recent misses with whether a next
page exists (a total would cost a scan of the window). One execution comes with its source task
instance and the execution of its step before it; a DAG run with its ledger rows; a task instance
with its row. ``dag_ids`` narrows a query to the DAGs a user may read (None: every DAG). The figures
are in :mod:`~.aggregates`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from airflow_valohai_reuse.cache.aggregates import reuse_counts
from airflow_valohai_reuse.cache.schema import executions, ledger
from airflow_valohai_reuse.cache.scope import Scope, in_scope, readable
from airflow_valohai_reuse.contracts import REUSED_KINDS, Kind


@dataclass(frozen=True)
class Page:
    """One page of rows; ``total`` None where counting would cost a scan of the window (then ``more``
    says whether a next page exists)."""

    rows: list[dict[str, Any]]
    total: int | None
    number: int
    size: int
    more: bool = False

    @property
    def pages(self) -> int | None:
        return None if self.total is None else max(1, -(-self.total // self.size))

    @property
    def has_next(self) -> bool:
        return self.more if self.total is None else self.number < (self.pages or 1)


@dataclass
class RunView:
    """A run's ledger rows, each with where its execution came from."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def saved_s(self) -> float:
        return sum(r["saved_s"] or 0.0 for r in self.rows if r["kind"] in REUSED_KINDS)


_ENTRY_COLUMNS = (
    executions.c.id,
    executions.c.fingerprint,
    executions.c.step,
    executions.c.pipeline,
    executions.c.node,
    executions.c.dag_id,
    executions.c.run_id,
    executions.c.task_id,
    executions.c.finished_at,
    executions.c.duration_s,
    executions.c.outputs,
    executions.c.invalidated_at,
    executions.c.expires_at,
)


def recent_entries(
    conn: Connection,
    dag_ids: Collection[str] | None,
    *,
    page: int = 1,
    size: int = 20,
    step: str | None = None,
) -> Page:
    """Recorded executions, newest first, with how many task instances reused each."""
    where = [readable(executions.c.dag_id, dag_ids)]
    if step:
        where.append(executions.c.step == step)
    query = (
        select(*_ENTRY_COLUMNS)
        .where(*where)
        .order_by(executions.c.finished_at.desc(), executions.c.id)
        .limit(size)
        .offset((page - 1) * size)
    )
    rows = [dict(r._mapping) for r in conn.execute(query)]
    counts = reuse_counts(conn, [r["id"] for r in rows], dag_ids)
    for row in rows:
        row["outputs"] = json.loads(row["outputs"])
        row["reused_by"] = counts.get(row["id"], 0)
    total = conn.execute(select(func.count()).select_from(executions).where(*where)).scalar_one()
    return Page(rows, int(total), page, size)


def execution(conn: Connection, execution_id: str, dag_ids: Collection[str] | None) -> dict[str, Any] | None:
    """One execution with its components, outputs and details decoded."""
    row = conn.execute(
        select(executions).where(executions.c.id == execution_id, readable(executions.c.dag_id, dag_ids))
    ).first()
    if row is None:
        return None
    found = dict(row._mapping)
    for key in ("components", "outputs", "exec_metadata"):
        found[key] = json.loads(found[key])
    found["metadata_series"] = json.loads(found["metadata_series"] or "{}")
    found["source"] = source(conn, execution_id)
    return found


def source(conn: Connection, execution_id: str) -> dict[str, Any] | None:
    """The task instance that ran an execution: its ledger row (with its map index) where the ledger
    still has it, else the DAG, run and task the execution recorded."""
    ran = conn.execute(
        select(ledger.c.dag_id, ledger.c.run_id, ledger.c.task_id, ledger.c.map_index)
        .where(ledger.c.execution_id == execution_id, ledger.c.kind == Kind.RAN.value)
        .limit(1)
    ).first()
    if ran is not None:
        return dict(ran._mapping)
    row = conn.execute(
        select(executions.c.dag_id, executions.c.run_id, executions.c.task_id).where(
            executions.c.id == execution_id
        )
    ).first()
    if row is None or not (row.dag_id and row.run_id and row.task_id):
        return None
    return {**row._mapping, "map_index": -1}


def reusers(
    conn: Connection, execution_id: str, dag_ids: Collection[str] | None, *, page: int = 1, size: int = 20
) -> Page:
    """The task instances that reused (or were pinned to) an execution, newest first."""
    where = and_(
        ledger.c.execution_id == execution_id,
        ledger.c.kind.in_(REUSED_KINDS),
        readable(ledger.c.dag_id, dag_ids),
    )
    columns = (ledger.c.dag_id, ledger.c.run_id, ledger.c.task_id, ledger.c.map_index, ledger.c.kind)
    query = (
        select(*columns, ledger.c.saved_s, ledger.c.recorded_at)
        .where(where)
        .order_by(ledger.c.recorded_at.desc())
        .limit(size)
        .offset((page - 1) * size)
    )
    rows = [dict(r._mapping) for r in conn.execute(query)]
    total = conn.execute(select(func.count()).select_from(ledger).where(where)).scalar_one()
    return Page(rows, int(total), page, size)


def recent_misses(conn: Connection, scope: Scope, *, page: int = 1, size: int = 10) -> Page:
    """Task instances that ran, newest first, with why they were not reused."""
    where = and_(in_scope(scope), ledger.c.kind == Kind.RAN.value)
    columns = (ledger.c.dag_id, ledger.c.run_id, ledger.c.task_id, ledger.c.map_index, ledger.c.step)
    query = (
        select(*columns, ledger.c.execution_id, ledger.c.reason, ledger.c.recorded_at)
        .where(where)
        .order_by(ledger.c.recorded_at.desc())
        .limit(size + 1)
        .offset((page - 1) * size)
    )
    rows = [dict(r._mapping) for r in conn.execute(query)]
    return Page(rows[:size], None, page, size, more=len(rows) > size)


def run_view(conn: Connection, dag_id: str, run_id: str) -> RunView:
    """Every ledger row of one DAG run, with its execution's step, duration, source task instance and
    metadata (last values)."""
    query = (
        select(
            ledger.c.task_id,
            ledger.c.map_index,
            ledger.c.node,
            ledger.c.step,
            ledger.c.kind,
            ledger.c.execution_id,
            ledger.c.saved_s,
            ledger.c.reason,
            ledger.c.recorded_at,
            executions.c.duration_s,
            executions.c.exec_metadata,
        )
        .select_from(ledger.outerjoin(executions, executions.c.id == ledger.c.execution_id))
        .where(ledger.c.dag_id == dag_id, ledger.c.run_id == run_id)
        .order_by(ledger.c.recorded_at, ledger.c.task_id, ledger.c.map_index)
    )
    rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["source"] = source(conn, row["execution_id"]) if row["kind"] in REUSED_KINDS else None
        # the last value of each key the execution printed (a reused row shows its source's)
        row["metadata"] = json.loads(row.pop("exec_metadata") or "{}").get("metadata", {})
    return RunView(rows)


def ledger_row(
    conn: Connection, dag_id: str, run_id: str, task_id: str, map_index: int
) -> dict[str, Any] | None:
    """One task instance's row: kind and execution (what its extra links point at)."""
    row = conn.execute(
        select(ledger.c.kind, ledger.c.execution_id).where(
            ledger.c.dag_id == dag_id,
            ledger.c.run_id == run_id,
            ledger.c.task_id == task_id,
            ledger.c.map_index == map_index,
        )
    ).first()
    return dict(row._mapping) if row is not None else None


def previous(
    conn: Connection, step: str, before: datetime | None, execution_id: str
) -> dict[str, Any] | None:
    """The newest other execution of the same step finished before ``before``: id and components (what
    an execution's page compares it with)."""
    query = select(executions.c.id, executions.c.components).where(
        executions.c.step == step, executions.c.id != execution_id
    )
    if before is not None:
        query = query.where(executions.c.finished_at < before)
    row = conn.execute(query.order_by(executions.c.finished_at.desc()).limit(1)).first()
    return {"id": row.id, "components": json.loads(row.components)} if row is not None else None
