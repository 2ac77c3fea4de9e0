"""The run ledger's figures, each a ``GROUP BY`` in SQL: executions run and reused and the compute time
saved, per pipeline or step, per day and per environment; and how often each execution was reused.

The UI's dashboard, the plugin's JSON API and ``valohai-reuse stats`` and ``ls`` read them; a
:class:`~.scope.Scope` narrows every figure, so none loads a table into Python. Counting follows the
ledger: a task instance that ran counts as run, one that reused or was pinned counts as reused, and the
time a reused row saved is its ``saved_s`` (the source execution's duration).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import JSON, Connection, case, cast, func, select, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from airflow_valohai_reuse.cache.schema import executions, ledger
from airflow_valohai_reuse.cache.scope import Scope, in_scope, readable
from airflow_valohai_reuse.contracts import REUSED_KINDS, Kind


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
class Day:
    day: date
    saved_s: float
    reused: int
    ran: int


#: what ``tallies`` groups by, in the order ``stats`` gives the groups
GROUPS = {"pipeline": ledger.c.pipeline, "step": ledger.c.step}


def _grouped(column: Any) -> ColumnElement[Any]:
    """A ledger column to group the window by, as an expression: grouping by the plain column lets
    SQLite walk that column's own index (a table read per row) instead of the covering index over
    the window (ix_vr_ledger_window in schema.py). NULL becomes ''."""
    return func.coalesce(column, "")


_RAN = func.coalesce(func.sum(case((ledger.c.kind == Kind.RAN.value, 1), else_=0)), 0)
_REUSED = func.coalesce(func.sum(case((ledger.c.kind.in_(REUSED_KINDS), 1), else_=0)), 0)
_SAVED = func.coalesce(func.sum(case((ledger.c.kind.in_(REUSED_KINDS), ledger.c.saved_s), else_=0.0)), 0.0)


def tallies(
    conn: Connection,
    scope: Scope,
    by: str,
    *,
    busiest_first: bool = True,
    page: int = 1,
    size: int | None = 20,
) -> tuple[list[Tally], int]:
    """One tally per pipeline (``by="pipeline"``) or step, busiest first (else by name), one page
    (``size`` None: every group); and how many groups there are."""
    column = _grouped(GROUPS[by])
    order = (func.count().desc(), column) if busiest_first else (column,)
    query = (
        select(column, _RAN, _REUSED, _SAVED, func.count().over())  # the window: how many groups
        .where(in_scope(scope))
        .group_by(column)
        .order_by(*order)
        .limit(size)
        .offset(None if size is None else (page - 1) * size)
    )
    rows = conn.execute(query).all()
    found = [Tally(r[0] or None, int(r[1]), int(r[2]), float(r[3])) for r in rows]
    return found, int(rows[0][4]) if rows else 0


def stats(
    conn: Connection, scope: Scope, *, busiest_first: bool = False, size: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The tallies per pipeline and per step as ``valohai-reuse stats --json`` prints them and the
    plugin's JSON API gives them: ``{"pipelines": [...], "steps": [...]}``, by name unless
    ``busiest_first``."""
    found: dict[str, list[dict[str, Any]]] = {}
    for key in GROUPS:
        groups, _ = tallies(conn, scope, key, busiest_first=busiest_first, size=size)
        found[f"{key}s"] = [_figures(key, tally) for tally in groups]
    return found


def _figures(key: str, tally: Tally) -> dict[str, Any]:
    return {
        key: tally.name,
        "executions_run": tally.ran,
        "executions_reused": tally.reused,
        "reuse_rate": round(tally.rate, 4),
        "saved_seconds": round(tally.saved_s, 3),
    }


def totals(days: list[Day]) -> Tally:
    """The whole window's tally, from its days (one scan of the window serves both)."""
    return Tally(None, sum(d.ran for d in days), sum(d.reused for d in days), sum(d.saved_s for d in days))


def saved_per_day(conn: Connection, scope: Scope) -> list[Day]:
    """Each day of the scope that has rows: time saved, rows reused and run."""
    day = func.date(ledger.c.recorded_at)
    query = select(day, _SAVED, _REUSED, _RAN).where(in_scope(scope)).group_by(day).order_by(day)
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
        .where(in_scope(scope), ledger.c.kind.in_(REUSED_KINDS))
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


def reuse_counts(
    conn: Connection, execution_ids: Iterable[str], dag_ids: Collection[str] | None = None
) -> dict[str, int]:
    """Execution id → how many task instances (of the DAGs in ``dag_ids``; None: every DAG) reused it
    or were pinned to it; an execution nobody reused is left out."""
    ids = list(execution_ids)
    if not ids:
        return {}
    query = (
        select(ledger.c.execution_id, func.count())
        .where(
            ledger.c.execution_id.in_(ids),
            ledger.c.kind.in_(REUSED_KINDS),
            readable(ledger.c.dag_id, dag_ids),
        )
        .group_by(ledger.c.execution_id)
    )
    return {r[0]: int(r[1]) for r in conn.execute(query)}
