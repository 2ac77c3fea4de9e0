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
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select

from airflow_valohai_reuse.cache.schema import executions, ledger
from airflow_valohai_reuse.contracts import Entry, Kind, Published, RunNode, TaskKey, referenced, with_outputs
from airflow_valohai_reuse.contracts.manifest import KeptOutputs, text_checksum


def _where(key: TaskKey) -> Any:
    return and_(
        ledger.c.dag_id == key.dag_id,
        ledger.c.run_id == key.run_id,
        ledger.c.task_id == key.task_id,
        ledger.c.map_index == key.map_index,
    )


_INSERT = insert(ledger)  # one statement, compiled once per process


def forget(conn: Connection, key: TaskKey) -> None:
    conn.execute(delete(ledger).where(_where(key)))


def write(conn: Connection, entry: Entry, recorded: bool) -> None:
    """Replace the task instance's row (a cleared task's new try overwrites the old one); ``recorded``:
    the execution's record is in this database, so many outputs are referenced, not repeated."""
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
            published=json.dumps(published.as_xcom(recorded), sort_keys=True),
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
    rows = [(row.task_id, json.loads(row.published)) for row in conn.execute(query)]
    kept = outputs_of(conn, [i for _, value in rows if (i := referenced(value))])
    found: dict[str, list[Published]] = {}
    for task_id, value in rows:
        found.setdefault(task_id, []).append(Published.from_xcom(with_outputs(value, kept)))
    return found


def outputs_of(conn: Connection, execution_ids: list[str]) -> KeptOutputs:
    """Execution id → the outputs its record holds, with their text's sha256 (an invalidated or
    expired execution's too: a run that published it reads them), in one query."""
    if not execution_ids:
        return {}
    query = select(executions.c.id, executions.c.outputs).where(
        executions.c.id.in_(sorted(set(execution_ids)))
    )
    return {row.id: (text_checksum(row.outputs), json.loads(row.outputs)) for row in conn.execute(query)}


def run_nodes(conn: Connection, dag_id: str, run_id: str) -> list[RunNode]:
    """What each node of one DAG run published: node, map index, kind, execution id
    (``reuse_from_run``). A node that failed or never ran has no row.

    A run is named by its DAG and its id: two DAGs may share a pipeline name (one valohai.yaml
    loaded with two ``dag_id_prefix``) and a run id (``scheduled__<date>`` of one cron)."""
    query = (
        select(ledger.c.node, ledger.c.map_index, ledger.c.kind, ledger.c.execution_id)
        .where(ledger.c.dag_id == dag_id, ledger.c.run_id == run_id)
        .order_by(ledger.c.node, ledger.c.map_index)
    )
    return [RunNode(row.node, row.map_index, Kind(row.kind), row.execution_id) for row in conn.execute(query)]
