"""Which run-ledger rows a query over the cache reads.

Every filter is optional (None: no narrowing), so the UI (the last days, the DAGs the user may read)
and ``valohai-reuse stats`` (``--since``, ``--pipeline``, every DAG) narrow their queries alike.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, true
from sqlalchemy.sql.elements import ColumnElement

from airflow_valohai_reuse.cache.schema import ledger


@dataclass(frozen=True)
class Scope:
    """Ledger rows recorded since ``since``, of the DAGs in ``dag_ids``, of ``pipeline`` (None: any)."""

    since: datetime | None = None
    dag_ids: Collection[str] | None = None
    pipeline: str | None = None


def readable(column: Any, dag_ids: Collection[str] | None) -> ColumnElement[bool]:
    """The DAG id in ``column`` is one of ``dag_ids`` (None: every DAG)."""
    return column.in_(sorted(dag_ids)) if dag_ids is not None else true()


def in_scope(scope: Scope) -> ColumnElement[bool]:
    """The ledger rows of ``scope``."""
    where = [] if scope.since is None else [ledger.c.recorded_at >= scope.since]
    where.append(readable(ledger.c.dag_id, scope.dag_ids))
    if scope.pipeline is not None:
        where.append(ledger.c.pipeline == scope.pipeline)
    return and_(*where)
