"""Execution ids as people give them: the whole id, or the short form the pages and commands show.

Every place that accepts an execution id (the ``reuse_nodes`` run option, ``valohai-reuse explain`` and
``invalidate``, the pages' URLs) resolves it here: an id recorded as given is that execution; otherwise
a prefix of at least :data:`MIN_PREFIX` characters names the one execution whose id starts with it. An
ambiguous prefix is refused with the ids it matches; a shorter one is refused as too short.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, select

from airflow_valohai_reuse.cache.schema import executions
from airflow_valohai_reuse.cache.scope import readable
from airflow_valohai_reuse.errors import ValohaiReuseError

#: the fewest characters a short execution id may have (the pages show the first 8)
MIN_PREFIX = 8
#: how many of an ambiguous prefix's matches a refusal names
_SHOWN = 5


class ExecutionIdError(ValohaiReuseError):
    """An execution id that names no execution, or more than one."""


def resolve(conn: Connection, given: str, dag_ids: Collection[str] | None = None) -> str:
    """The id of the one execution ``given`` names (of the DAGs in ``dag_ids``; None: any DAG)."""
    where = readable(executions.c.dag_id, dag_ids)
    if conn.execute(select(executions.c.id).where(executions.c.id == given, where)).first() is not None:
        return given
    if len(given) < MIN_PREFIX:
        raise ExecutionIdError(
            f"no successful execution with id {given!r} (a short id needs at least {MIN_PREFIX} characters)"
        )
    query = (
        select(executions.c.id)
        # ids are written lowercase (uuid4); PostgreSQL's LIKE, unlike SQLite's, minds the case
        .where(executions.c.id.startswith(given.lower(), autoescape=True), where)
        .order_by(executions.c.id)
        .limit(_SHOWN + 1)
    )
    found = list(conn.execute(query).scalars())
    if not found:
        raise ExecutionIdError(f"no successful execution with id {given!r}")  # nor a prefix of one
    if len(found) > 1:
        shown = ", ".join(found[:_SHOWN]) + (", …" if len(found) > _SHOWN else "")
        raise ExecutionIdError(f"execution id {given!r} is ambiguous: it starts {shown}; give more of the id")
    return found[0]
