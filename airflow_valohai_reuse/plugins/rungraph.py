"""The graph on a run's Reuse tab: the pipeline's nodes and edges (from its valohai.yaml) with each
node's badge and source, from the run ledger, Airflow's state of the nodes that published nothing, and
the run's refused pins."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_valohai_reuse.cache.rows import RunView
from airflow_valohai_reuse.plugins import graph
from airflow_valohai_reuse.plugins.shape import Shape, pipeline_shape

log = logging.getLogger(__name__)


def _shape(dag_id: str, view: RunView, states: Mapping[str, str | None]) -> Shape:
    """The valohai.yaml's shape; without one (a file gone or broken since), the nodes the run knows."""
    try:
        found = pipeline_shape(dag_id)
    except Exception as exc:  # the page still shows the table
        log.warning("the pipeline of %s cannot be read for its graph: %s", dag_id, exc)
        found = None
    if found is not None:
        return found
    task_ids = {r["node"] or r["task_id"]: r["task_id"] for r in view.rows}
    task_ids.update({t: t for t in states if t not in task_ids.values()})
    return Shape(task_ids, {r["node"] or r["task_id"]: r["step"] for r in view.rows}, [])


def _detail(step: str | None, published: list[Mapping[str, Any]]) -> str:
    """The box's last line: the run a reused execution came from, else the node's step."""
    sources = {r["source"]["run_id"] for r in published if r.get("source")}
    if len(sources) == 1 and all(r.get("source") for r in published):
        return f"from {next(iter(sources))}"
    return f"step {step}" if step else ""


def run_graph(
    dag_id: str,
    view: RunView,
    unpublished: Iterable[Mapping[str, Any]],
    refused: Mapping[str, str],
) -> graph.Graph:
    states = {n["task_id"]: n["state"] for n in unpublished}
    shape = _shape(dag_id, view, states)
    facts = graph.node_facts(view.rows)
    badges, details, executions = {}, {}, {}
    for node, task_id in shape.task_ids.items():
        published = facts.get(node, [])
        reason = refused.get(node, refused.get(""))
        badges[node] = graph.badge([r["kind"] for r in published], states.get(task_id), reason)
        details[node] = _detail(shape.steps.get(node), published)
        if len({r["execution_id"] for r in published}) == 1:
            executions[node] = published[0]["execution_id"]
    return graph.layout(list(shape.task_ids), shape.edges, badges, details, executions)
