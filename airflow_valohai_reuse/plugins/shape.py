"""A pipeline DAG's nodes and edges as its valohai.yaml declares them, for the run's graph: node names
in the pipeline's order with their task ids and steps, and each edge with what it carries."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_valohai_reuse.pipeline.analysis import analyses
from airflow_valohai_reuse.plugins.lookups import pipeline_file
from airflow_valohai_reuse.settings import load_settings


@dataclass(frozen=True)
class Shape:
    #: node name → task id, in the pipeline's order
    task_ids: dict[str, str]
    steps: dict[str, str]
    #: (source node, target node, what it carries: ``prep.output.clean.csv → train.input.dataset``)
    edges: list[tuple[str, str, str]]


def pipeline_shape(dag_id: str) -> Shape | None:
    """The shape of the pipeline that makes ``dag_id`` (None: no valohai.yaml found makes it)."""
    where = pipeline_file(dag_id)
    if where is None:
        return None
    for _, analysis in analyses(where.path, None, load_settings().dag_id_prefix, dag_id):
        names = {task: node for node, task in analysis.task_ids.items()}
        edges = [
            (e.source_node, e.target_node, f"{e.source} \u2192 {e.target}")
            for e in analysis.pipeline.edges
            if e.source_node in analysis.task_ids and e.target_node in analysis.task_ids
        ]
        # an order through a left-out deployment node has no edge of its own between the two
        edges += [(names[s], names[t], "") for s, t in sorted(analysis.deps) if s in names and t in names]
        steps = {node: step.name for node, step in analysis.steps.items()}
        return Shape(dict(analysis.task_ids), steps, edges)
    return None
