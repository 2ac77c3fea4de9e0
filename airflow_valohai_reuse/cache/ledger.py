"""The run ledger: which execution each task instance published, and whether it ran, reused or was pinned.

One row per task instance (``dag_id``, ``run_id``, ``task_id``, ``map_index``), replaced by each try.
A node's own row is deleted when it starts, so a row is never older than the node's latest try:
downstream nodes read their upstreams' rows in one query, and fall back to XCom for any row that is
not there. ``reuse_from_run`` reads an earlier run's rows (:func:`run_nodes`). Every query that
names a run names its DAG too. The figures summed
over many rows are in :mod:`~.aggregates`, the UI's pages of rows in :mod:`~.rows`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select

from airflow_valohai_reuse.cache.schema import ledger
from airflow_valohai_reuse.contracts import Kind, Output, Published


@dataclass(frozen=True)
class TaskKey:
    """One task instance of one DAG run."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    def _where(self) -> Any:
        return and_(
            ledger.c.dag_id == self.dag_id,
            ledger.c.run_id == self.run_id,
            ledger.c.task_id == self.task_id,
            ledger.c.map_index == self.map_index,
        )


@dataclass(frozen=True)
class Entry:
    """A ledger row: a task instance and what it published."""

    key: TaskKey
    published: Published
    try_number: int | None = None
    pipeline: str | None = None
    #: reused or pinned: the compute time saved (the source execution's duration)
    saved_s: float | None = None
    #: ran: why it was not reused
    reason: str | None = None


_INSERT = insert(ledger)  # one statement, compiled once per process


def forget(conn: Connection, key: TaskKey) -> None:
    conn.execute(delete(ledger).where(key._where()))


def write(conn: Connection, entry: Entry) -> None:
    """Replace the task instance's row (a cleared task's new try overwrites the old one)."""
    forget(conn, entry.key)
    published = entry.published
    conn.execute(
        _INSERT,
        dict(
            dag_id=entry.key.dag_id,
            run_id=entry.key.run_id,
            task_id=entry.key.task_id,
            map_index=entry.key.map_index,
            try_number=entry.try_number,
            kind=published.kind.value,
            execution_id=published.execution_id,
            pipeline=entry.pipeline,
            step=published.step,
            node=published.node,
            saved_s=entry.saved_s,
            reason=entry.reason,
            published=json.dumps(_encode(published), sort_keys=True),
            recorded_at=datetime.now(UTC),
        ),
    )


def read(conn: Connection, dag_id: str, run_id: str, task_ids: Iterable[str]) -> dict[str, list[Published]]:
    """Task id → what its instances published, by map index, for the given tasks of one run."""
    query = (
        select(ledger.c.task_id, ledger.c.published)
        .where(ledger.c.dag_id == dag_id, ledger.c.run_id == run_id, ledger.c.task_id.in_(list(task_ids)))
        .order_by(ledger.c.task_id, ledger.c.map_index)
    )
    found: dict[str, list[Published]] = {}
    for row in conn.execute(query):
        found.setdefault(row.task_id, []).append(_decode(json.loads(row.published)))
    return found


def run_nodes(conn: Connection, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """What each node of one DAG run published: node, map index, kind, execution id
    (``reuse_from_run``). A node that failed or never ran has no row.

    A run is named by its DAG and its id: two DAGs may share a pipeline name (one valohai.yaml
    loaded with two ``dag_id_prefix``) and a run id (``scheduled__<date>`` of one cron)."""
    query = (
        select(ledger.c.node, ledger.c.map_index, ledger.c.kind, ledger.c.execution_id)
        .where(ledger.c.dag_id == dag_id, ledger.c.run_id == run_id)
        .order_by(ledger.c.node, ledger.c.map_index)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def _encode(published: Published) -> dict[str, Any]:
    return published.as_xcom()


def _decode(data: dict[str, Any]) -> Published:
    return Published(
        execution_id=data["execution_id"],
        kind=Kind(data["kind"]),
        fingerprint=data["fingerprint"],
        outputs=[Output.from_dict(o) for o in data["outputs"]],
        parameters=data["parameters"],
        inputs=data["inputs"],
        environment=data["environment"],
        metadata=data["metadata"],
        step=data["step"],
        node=data["node"],
    )
