"""What a node reads from its upstream nodes: their published results, from the run ledger in one query.

A row the ledger lacks (the cache database was unreachable when the upstream published, or it is a
task node, whose variants' count the ledger does not know) is read from the upstream's XCom.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from airflow_valohai_reuse.cache.failopen import Cache
from airflow_valohai_reuse.pipeline.spec import NodeSpec
from airflow_valohai_reuse.reuse.resolve import merge_upstream, upstream_tasks


def read_upstream(
    node: NodeSpec,
    *,
    cache: Cache,
    dag_id: str,
    run_id: str,
    mapped: Collection[str],
    pull: Callable[[str], Any],
    tolerated: Collection[str] = (),
) -> dict[str, dict[str, Any]]:
    """Upstream task id → its result as the XCom states it (a task node's variants merged).

    ``mapped``: the task ids of task nodes; ``pull``: reads one task's XCom; ``tolerated``: upstream
    tasks whose failure the pipeline tolerates (on-error continue): what they lack is read as nothing.
    """
    tasks = upstream_tasks(node)
    plain = [t for t in tasks if t not in mapped]
    rows = (cache.published(dag_id, run_id, plain) if plain else None) or {}
    found: dict[str, dict[str, Any]] = {}
    for task_id in tasks:
        published = rows.get(task_id)
        if published and task_id not in mapped:
            found[task_id] = published[0].as_xcom()
        else:
            found[task_id] = merge_upstream(task_id, pull(task_id), partial=task_id in tolerated)
    return found
