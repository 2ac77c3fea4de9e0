"""What the UI reads from the cache database: aggregates computed in SQL and pages of rows.

Nothing here loads a table into Python: every list is a page (``LIMIT``/``OFFSET``) with its total,
and every figure (runs, reuses, time saved, per day, per environment) is a ``GROUP BY``. ``dag_ids``
narrows every query to the DAGs a user may read (None: every DAG). Counting follows the run ledger:
a task instance that ran counts as run, one that reused or was pinned counts as reused, and the time
a reused row saved is its ``saved_s`` (the source execution's duration).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Connection, and_, case, cast, func, select, true, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from airflow_valohai_reuse.cache.schema import executions, ledger
from airflow_valohai_reuse.records import Kind

REUSED_KINDS = (Kind.REUSED.value, Kind.PINNED.value)


@dataclass(frozen=True)
class Scope:
    """Ledger rows recorded since ``since``, of the DAGs in ``dag_ids`` (None: every DAG)."""

    since: datetime
    dag_ids: Collection[str] | None = None


@dataclass(frozen=True)
class Tally:
    """Executions run and reused, and the compute time the reuses saved, of one group."""

    name: str | None
    ran: int
    reused: int
    saved_s: float

    @property
    def rate(self) -> float:
        """Reused / (run + reused); 0 where nothing happened."""
        total = self.ran + self.reused
        return self.reused / total if total else 0.0


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


@dataclass(frozen=True)
class Day:
    day: date
    saved_s: float
    reused: int
    ran: int


@dataclass
class RunView:
    """A run's ledger rows, each with where its execution came from."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def saved_s(self) -> float:
        return sum(r["saved_s"] or 0.0 for r in self.rows if r["kind"] in REUSED_KINDS)


def _dags(column: Any, dag_ids: Collection[str] | None) -> ColumnElement[bool]:
    return column.in_(sorted(dag_ids)) if dag_ids is not None else true()


def _in_scope(scope: Scope) -> ColumnElement[bool]:
    return and_(ledger.c.recorded_at >= scope.since, _dags(ledger.c.dag_id, scope.dag_ids))


def _grouped(column: Any) -> ColumnElement[Any]:
    """A ledger column to group the window by, as an expression: grouping by the plain column lets
    SQLite walk that column's own index (a table read per row) instead of the covering index over
    the window (ix_vr_ledger_window in schema.py). NULL becomes ''."""
    return func.coalesce(column, "")


_RAN = func.coalesce(func.sum(case((ledger.c.kind == Kind.RAN.value, 1), else_=0)), 0)
_REUSED = func.coalesce(func.sum(case((ledger.c.kind.in_(REUSED_KINDS), 1), else_=0)), 0)
_SAVED = func.coalesce(func.sum(case((ledger.c.kind.in_(REUSED_KINDS), ledger.c.saved_s), else_=0.0)), 0.0)


def totals(days: list[Day]) -> Tally:
    """The whole window's tally, from its days (one scan of the window serves both)."""
    return Tally(None, sum(d.ran for d in days), sum(d.reused for d in days), sum(d.saved_s for d in days))


def tallies(
    conn: Connection, scope: Scope, by: str, *, page: int = 1, size: int = 20
) -> tuple[list[Tally], int]:
    """One tally per pipeline (``by="pipeline"``) or step, busiest first, one page; and how many
    groups there are."""
    column = _grouped({"pipeline": ledger.c.pipeline, "step": ledger.c.step}[by])
    query = (
        select(column, _RAN, _REUSED, _SAVED, func.count().over())  # the window: how many groups
        .where(_in_scope(scope))
        .group_by(column)
        .order_by(func.count().desc(), column)
        .limit(size)
        .offset((page - 1) * size)
    )
    rows = conn.execute(query).all()
    found = [Tally(r[0] or None, int(r[1]), int(r[2]), float(r[3])) for r in rows]
    return found, int(rows[0][4]) if rows else 0


def saved_per_day(conn: Connection, scope: Scope) -> list[Day]:
    """Each day of the scope that has rows: time saved, rows reused and run."""
    day = func.date(ledger.c.recorded_at)
    query = select(day, _SAVED, _REUSED, _RAN).where(_in_scope(scope)).group_by(day).order_by(day)
    return [Day(_as_date(r[0]), float(r[1]), int(r[2]), int(r[3])) for r in conn.execute(query)]


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _slug(conn: Connection) -> ColumnElement[Any]:
    """The environment slug inside an execution's components (JSON kept as text)."""
    path = ("environment", "environment")
    if conn.dialect.name == "sqlite":  # SQLite's CAST(... AS JSON) would turn the text into a number
        return type_coerce(executions.c.components, JSON)[path].as_string()
    return cast(executions.c.components, JSON)[path].as_string()


def saved_by_environment(conn: Connection, scope: Scope) -> dict[str | None, float]:
    """Seconds saved per environment slug of the reused executions (for a price per hour)."""
    # per execution first: reuses repeat a few executions, so few components are parsed
    execution_id = _grouped(ledger.c.execution_id)
    per_execution = (
        select(execution_id.label("execution_id"), func.sum(ledger.c.saved_s).label("saved"))
        .where(_in_scope(scope), ledger.c.kind.in_(REUSED_KINDS))
        .group_by(execution_id)
        .subquery()
    )
    slug = _slug(conn)
    query = (
        select(slug, func.coalesce(func.sum(per_execution.c.saved), 0.0))
        .select_from(per_execution.join(executions, executions.c.id == per_execution.c.execution_id))
        .group_by(slug)
    )
    return {r[0]: float(r[1]) for r in conn.execute(query)}


def _reuse_counts(conn: Connection, ids: list[str], dag_ids: Collection[str] | None) -> dict[str, int]:
    if not ids:
        return {}
    query = (
        select(ledger.c.execution_id, func.count())
        .where(
            ledger.c.execution_id.in_(ids), ledger.c.kind.in_(REUSED_KINDS), _dags(ledger.c.dag_id, dag_ids)
        )
        .group_by(ledger.c.execution_id)
    )
    return {r[0]: int(r[1]) for r in conn.execute(query)}


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
    where = [_dags(executions.c.dag_id, dag_ids)]
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
    counts = _reuse_counts(conn, [r["id"] for r in rows], dag_ids)
    for row in rows:
        row["outputs"] = json.loads(row["outputs"])
        row["reused_by"] = counts.get(row["id"], 0)
    total = conn.execute(select(func.count()).select_from(executions).where(*where)).scalar_one()
    return Page(rows, int(total), page, size)


def execution(conn: Connection, execution_id: str, dag_ids: Collection[str] | None) -> dict[str, Any] | None:
    """One execution with its components, outputs and details decoded."""
    row = conn.execute(
        select(executions).where(executions.c.id == execution_id, _dags(executions.c.dag_id, dag_ids))
    ).first()
    if row is None:
        return None
    found = dict(row._mapping)
    for key in ("components", "outputs", "exec_metadata"):
        found[key] = json.loads(found[key])
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
        _dags(ledger.c.dag_id, dag_ids),
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
    where = and_(_in_scope(scope), ledger.c.kind == Kind.RAN.value)
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
    """Every ledger row of one DAG run, with its execution's step, duration and source task instance."""
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
        )
        .select_from(ledger.outerjoin(executions, executions.c.id == ledger.c.execution_id))
        .where(ledger.c.dag_id == dag_id, ledger.c.run_id == run_id)
        .order_by(ledger.c.recorded_at, ledger.c.task_id, ledger.c.map_index)
    )
    rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["source"] = source(conn, row["execution_id"]) if row["kind"] in REUSED_KINDS else None
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
