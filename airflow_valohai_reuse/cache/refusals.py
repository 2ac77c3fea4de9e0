"""Refused pins of a run (``reuse_nodes``, ``reuse_from_run``): each node's one-line reason, kept in the
cache database by the node task that refused it, so the run's Reuse tab says why beside the node and
not only in the task log.

A small table of its own, made where it is first written: a refusal is a note about a run, not part of
any execution or ledger row, and a database that never saw one has no table (reads find nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from airflow_valohai_reuse.cache.executions import engine_for

log = logging.getLogger(__name__)

metadata = MetaData()
pin_refusals = Table(
    "pin_refusals",
    metadata,
    Column("dag_id", String(250), primary_key=True),
    Column("run_id", String(250), primary_key=True),
    #: the refused node; "" where the option itself is malformed (every node is stopped)
    Column("node", String(250), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)


def record(conn: Connection, dag_id: str, run_id: str, problems: Mapping[str, str]) -> None:
    """Keep each node's reason, replacing what an earlier try of the run recorded for it."""
    pin_refusals.create(conn, checkfirst=True)
    where = and_(pin_refusals.c.dag_id == dag_id, pin_refusals.c.run_id == run_id)
    conn.execute(delete(pin_refusals).where(where, pin_refusals.c.node.in_(list(problems))))
    now = datetime.now(UTC)
    rows = [
        {"dag_id": dag_id, "run_id": run_id, "node": node, "reason": reason, "recorded_at": now}
        for node, reason in problems.items()
    ]
    if rows:
        conn.execute(insert(pin_refusals), rows)


def read(conn: Connection, dag_id: str, run_id: str) -> dict[str, str]:
    """Node → why its pin was refused, for one run of one DAG (empty: none refused)."""
    try:
        found = conn.execute(
            select(pin_refusals.c.node, pin_refusals.c.reason)
            .where(pin_refusals.c.dag_id == dag_id, pin_refusals.c.run_id == run_id)
            .order_by(pin_refusals.c.node)
        )
        return {row.node: row.reason for row in found}
    except SQLAlchemyError:  # no pin of this database was ever refused: no table yet
        conn.rollback()
        return {}


def keep_refusal(url: str, dag_id: str, run_id: str, problems: Mapping[str, str]) -> None:
    """What a node task calls when the run's pins are refused; a cache it cannot write costs a
    warning (the task log still has the reason), never the task's own one-line failure."""
    try:
        with engine_for(url).begin() as conn:
            record(conn, dag_id, run_id, problems)
    except Exception as exc:
        log.warning("the refusal of this run's pins is not kept for its Reuse tab: %s", exc)
