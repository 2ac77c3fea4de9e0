"""Task-instance and DAG-run notes that show reuse in Airflow's Grid, which marks what has a note.

A reused or pinned node's task instance gets ``♻ reused 1a2b3c4d from dag/run/task · saved 3.2 s``
(``📌 pinned …`` likewise); a run with any reuse gets ``3/3 reused, 6.7 s saved``. They are written
when the run ends, by a listener of the scheduler (and of the API server, where a user marks a run
done, and of ``dag.test()``): components that may write the metadata database, which a task may not.
The facts come from the run ledger in the cache database. A note someone wrote is never replaced: a
note counts as this product's only while it has no author and starts as one of ours, and only those
are rewritten (a cleared node that ran this time loses its stale ``reused`` note).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from airflow.listeners import hookimpl

from airflow_valohai_reuse.cache import rows
from airflow_valohai_reuse.cache.executions import engine_for
from airflow_valohai_reuse.contracts import OPERATOR_NAME, Kind
from airflow_valohai_reuse.plugins.display import duration
from airflow_valohai_reuse.settings import load_settings

log = logging.getLogger(__name__)

MARKS = {Kind.REUSED: "\u267b reused", Kind.PINNED: "\U0001f4cc pinned"}
_RUN_NOTE = re.compile(r"^\d+/\d+ reused(, .* saved)?$")
#: the short id the pages show, and the shortest prefix every id option accepts
SHORT = 8


def _seconds(value: float) -> str:
    return duration(value)


def task_note(row: Mapping[str, Any] | None) -> str | None:
    """The note of one node's task instance from its ledger row (None: a node that ran, or none)."""
    if row is None or row.get("kind") not in MARKS:
        return None
    text = f"{MARKS[row['kind']]} {str(row['execution_id'])[:SHORT]}"
    source = row.get("source")
    if source:
        where = f"{source['dag_id']}/{source['run_id']}/{source['task_id']}"
        index = source.get("map_index")
        text += f" from {where}" + (f"[{index}]" if index is not None and index >= 0 else "")
    if row.get("saved_s") is not None:
        text += f" \u00b7 saved {_seconds(row['saved_s'])}"
    return text


def run_note(rows: Iterable[Mapping[str, Any]], nodes: int) -> str | None:
    """The run's one line: how many of its ``nodes`` task instances were reused or pinned and the
    compute time that saved (None: nothing was reused, so the Grid marks nothing)."""
    reused = [r for r in rows if r.get("kind") in MARKS]
    if not reused:
        return None
    saved = sum(r.get("saved_s") or 0.0 for r in reused)
    return f"{len(reused)}/{max(nodes, len(reused))} reused, {_seconds(saved)} saved"


def is_ours(content: str | None, user_id: str | None, run: bool = False) -> bool:
    """Whether a note is one this product wrote and may rewrite: no author, and one of our shapes."""
    if user_id is not None or not content:
        return False
    if run:
        return bool(_RUN_NOTE.match(content))
    return any(content.startswith(mark + " ") for mark in MARKS.values())


def replace(current: tuple[str | None, str | None] | None, text: str | None, run: bool = False) -> bool:
    """Whether a note (content, author; None: no note) should become ``text`` (None: be removed)."""
    if current is None or not current[0]:
        return text is not None
    return is_ours(*current, run=run) and current[0] != text


def write_notes(dag_run: Any, session: Any) -> int:
    """Note the run's reused and pinned node task instances and the run itself; returns how many notes
    were set or removed. Only the run's node tasks are looked at, so another DAG's end costs one query
    and never opens the cache database."""
    tis = [ti for ti in dag_run.get_task_instances(session=session) if ti.operator == OPERATOR_NAME]
    if not tis:
        return 0
    found = {(r["task_id"], r["map_index"]): r for r in _ledger_rows(dag_run.dag_id, dag_run.run_id)}
    changed = 0
    for ti in tis:
        text = task_note(found.get((ti.task_id, ti.map_index)))
        changed += _set(ti, "task_instance_note", text, run=False)
    changed += _set(dag_run, "dag_run_note", run_note(found.values(), len(tis)), run=True)
    return changed


def _set(owner: Any, relation: str, text: str | None, run: bool) -> int:
    note = getattr(owner, relation)
    current = (note.content, note.user_id) if note is not None else None
    if not replace(current, text, run):
        return 0
    if text is None:
        setattr(owner, relation, None)  # delete-orphan: the row goes
    elif note is None:
        owner.note = text  # the association proxy makes the note row, without an author
    else:
        note.content = text
    return 1


def _ledger_rows(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    with engine_for(load_settings().sql_alchemy_conn).connect() as conn:
        return rows.run_view(conn, dag_id, run_id).rows


def _noted(dag_run: Any) -> None:
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    try:
        if session is not None:
            write_notes(dag_run, session)  # committed with the component's own change of the run
            return
        from airflow.utils.session import create_session

        with create_session() as own:
            write_notes(own.merge(dag_run), own)
    except Exception as exc:  # a note is a convenience: it never fails the component that ends the run
        log.warning("reuse notes of %s/%s not written: %s", dag_run.dag_id, dag_run.run_id, exc)


class ReuseNotes:
    """The listener the plugin registers; Airflow calls it where a run's state changes."""

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        _noted(dag_run)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        _noted(dag_run)


listener = ReuseNotes()
