"""A pipeline's edges and parameters as Airflow sees them: incoming edges per node by kind, task
dependencies, and pipeline parameters as DAG Params with their targets."""

from __future__ import annotations

import logging
from pathlib import Path

from valohai_yaml.objs import Pipeline, Step
from valohai_yaml.objs.pipelines.deployment_node import DeploymentNode

from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.pipeline.options import NAMES as RESERVED_PARAMS
from airflow_valohai_reuse.pipeline.spec import EdgeIn, ParamSpec

log = logging.getLogger(__name__)

_PARAM_TYPES = {"integer": "integer", "float": "number", "flag": "boolean", "string": "string"}


def omitted(pipeline: Pipeline) -> list[str]:
    notes = [
        f"deployment node {n.name!r} left out: deployments have no Airflow meaning here"
        for n in pipeline.nodes
        if isinstance(n, DeploymentNode)
    ]
    for note in notes:
        log.info("pipeline %r: %s", pipeline.name, note)
    return notes


def classify_edges(
    pipeline: Pipeline, task_ids: dict[str, str], path: Path
) -> tuple[dict[str, dict[str, list[EdgeIn]]], set[tuple[str, str]], list[str]]:
    """Incoming edges per node by kind, the task dependencies, and notes on edges left out."""
    incoming: dict[str, dict[str, list[EdgeIn]]] = {
        n: {"input": [], "parameter": [], "env": []} for n in task_ids
    }
    deps: set[tuple[str, str]] = set()
    notes: list[str] = []
    for edge in pipeline.edges:
        if edge.source_node not in task_ids or edge.target_node not in task_ids:
            notes.append(f"edge {edge.source} → {edge.target} left out: it touches a node that is not a task")
            continue
        deps.add((task_ids[edge.source_node], task_ids[edge.target_node]))
        item = EdgeIn(
            task_ids[edge.source_node], edge.source_node, edge.source_type, edge.source_key, edge.target_key
        )
        kinds = {
            ("input", "output"): "input",
            ("input", "input"): "input",
            ("parameter", "parameter"): "parameter",
            ("parameter", "metadata"): "parameter",
            ("environment-variable", "environment-variable"): "env",
        }
        kind = kinds.get((edge.target_type, edge.source_type))
        if kind is not None:
            incoming[edge.target_node][kind].append(item)
        elif not (edge.source_type == "dependency" and edge.target_type == "dependency"):
            raise PipelineFileError(
                str(path),
                f"edge {edge.source} → {edge.target}: unsupported edge kind",
                f"pipeline {pipeline.name}",
            )
    for note in notes:
        log.info("pipeline %r: %s", pipeline.name, note)
    return incoming, deps, notes


def pipeline_params(
    pipeline: Pipeline, task_ids: dict[str, str], steps: dict[str, Step], path: Path
) -> tuple[dict[str, ParamSpec], dict[str, dict[str, list[str]]]]:
    """Run parameters for pipeline parameters, and per node: pipeline parameter → node parameters."""
    params: dict[str, ParamSpec] = {}
    targets: dict[str, dict[str, list[str]]] = {}
    for pp in pipeline.parameters:
        if pp.name in RESERVED_PARAMS:
            raise PipelineFileError(str(path), f"pipeline parameter {pp.name!r} is a reserved name")
        json_type = None
        for target in pp.targets:
            node, kind, name = [*target.split(".", 2), "", ""][:3]
            if node not in task_ids or not kind.startswith("parameter"):
                raise PipelineFileError(
                    str(path), f"pipeline parameter {pp.name!r}: target {target!r} is not node.parameter.name"
                )
            targets.setdefault(node, {}).setdefault(pp.name, []).append(name)
            declared = steps[node].parameters.get(name)
            if declared is not None and json_type is None:
                json_type = "array" if declared.multiple else _PARAM_TYPES.get(declared.type)
        if isinstance(pp.default, list):
            json_type = "array"
        description = pp.description or f"sets {', '.join(pp.targets)}"
        params[pp.name] = ParamSpec(pp.default, description, [json_type, "null"] if json_type else None)
    return params, targets
