"""What a node reads from its upstream nodes: their published results, from the run ledger in one query.

A row the ledger lacks (the cache database was unreachable when the upstream published, or it is a
task node, whose variants' count the ledger does not know) is read from the upstream's XCom.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from airflow_valohai_reuse.contracts import LedgerReader, Upstream, referenced, with_outputs
from airflow_valohai_reuse.pipeline.spec import NodeSpec
from airflow_valohai_reuse.pipeline.variants import merge_executions

log = logging.getLogger(__name__)


def upstream_tasks(node: NodeSpec) -> list[str]:
    edges = (*node.inputs_from_edges, *node.parameters_from_edges, *node.environment_from_edges)
    return sorted({e.source_task for e in edges})


def read_upstream(
    node: NodeSpec,
    *,
    cache: LedgerReader,
    dag_id: str,
    run_id: str,
    mapped: Collection[str],
    pull: Callable[[str], Any],
    tolerated: Collection[str] = (),
) -> dict[str, Upstream]:
    """Upstream task id → what it published (a task node's variants merged).

    ``mapped``: the task ids of task nodes; ``pull``: reads one task's XCom; ``tolerated``: upstream
    tasks whose failure the pipeline tolerates (on-error continue): what they lack is read as nothing.
    """
    tasks = upstream_tasks(node)
    plain = [t for t in tasks if t not in mapped]
    rows = (cache.published(dag_id, run_id, plain) if plain else None) or {}
    found: dict[str, Upstream] = {}
    for task_id in tasks:
        published = rows.get(task_id)
        if published and task_id not in mapped:
            found[task_id] = Upstream.of(published[0])
        else:
            value = with_referenced_outputs(pull(task_id), cache)
            found[task_id] = from_xcom(task_id, value, partial=task_id in tolerated)
    return found


def with_referenced_outputs(value: Any, cache: LedgerReader) -> Any:
    """An upstream's XCom value (or a task node's list of them) with the outputs it references read
    from the cache database, in one query (a published value references many outputs: records.py)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    wanted = [i for v in values if isinstance(v, Mapping) and (i := referenced(v))]
    if not wanted:
        return value
    kept = cache.outputs_of(wanted) or {}
    found = [with_outputs(v, kept) if isinstance(v, Mapping) else v for v in values]
    return found if isinstance(value, (list, tuple)) else found[0]


def from_xcom(task_id: str, value: Any, *, partial: bool = False) -> Upstream:
    """An upstream's XCom value as one record; a task node's variants are merged. ``partial``: the
    upstream's failure is tolerated (on-error continue), so a missing result, or missing variants,
    read as nothing."""
    if isinstance(value, (list, tuple)):
        if partial:
            value = [v for v in value if isinstance(v, dict)] or None
        if value is not None:
            return merge_executions(task_id, list(value))
    if value is None and partial:
        log.warning(
            "upstream task %r failed and published nothing; on-error continue: going on without it", task_id
        )
        return Upstream()
    if not isinstance(value, dict):
        raise RuntimeError(f"upstream task {task_id!r} left no execution XCom; was it cleared?")
    return Upstream.from_xcom(value)
