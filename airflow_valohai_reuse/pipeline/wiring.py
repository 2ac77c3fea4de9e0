"""A pipeline's edges and parameters as Airflow sees them: incoming edges per node by kind, task
dependencies, and pipeline parameters as DAG Params with their targets."""

from __future__ import annotations

import difflib
from pathlib import Path

from valohai_yaml.objs import Pipeline, Step
from valohai_yaml.objs.pipelines.edge import Edge
from valohai_yaml.objs.pipelines.execution_node import ExecutionNode
from valohai_yaml.objs.pipelines.types import edge_types

from airflow_valohai_reuse.contracts import SourceKind
from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.pipeline.options import NAMES as RESERVED_PARAMS
from airflow_valohai_reuse.pipeline.spec import EdgeIn, ParamSpec

_PARAM_TYPES = {"integer": "integer", "float": "number", "flag": "boolean", "string": "string"}


_KINDS = {
    ("input", "output"): "input",
    ("input", "input"): "input",
    ("parameter", "parameter"): "parameter",
    ("parameter", "metadata"): "parameter",
    ("environment-variable", "environment-variable"): "env",
}
#: what feeds each target kind, for the message that refuses an edge of another kind
_FED_BY = {
    "input": "an output or an input",
    "parameter": "a parameter or metadata",
    "environment-variable": "an environment variable",
    "dependency": "a dependency",
}


def _suggest(word: str, choices: list[str] | set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    if not close and word.rstrip("s") in choices:
        close = [word.rstrip("s")]
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_ends(edge: Edge, pipeline: Pipeline, path: Path) -> None:
    """Both nodes exist and both socket types are edge types, as valohai-yaml's linter demands."""
    names = [n.name for n in pipeline.nodes]
    where = f"pipeline {pipeline.name}"
    for node, kind, end in (
        (edge.source_node, edge.source_type, "source"),
        (edge.target_node, edge.target_type, "target"),
    ):
        if node not in names:
            problem = f"edge {edge.source} → {edge.target}: {end} node {node!r} is not a node of the pipeline"
            raise PipelineFileError(str(path), problem + _suggest(node, names), where)
        if kind not in edge_types:
            problem = (
                f"edge {edge.source} → {edge.target}: {kind!r} is not an edge type "
                f"(one of {', '.join(sorted(edge_types))})"
            )
            raise PipelineFileError(str(path), problem + _suggest(kind, edge_types), where)


def _unsupported(edge: Edge) -> str:
    fed = _FED_BY.get(edge.target_type)
    if edge.target_type in ("file", "deployment"):
        why = f"a {edge.target_type} target belongs to a deployment node, not to an execution or task node"
    elif fed is None:
        why = f"{edge.target_type} is never an edge's target; targets are {', '.join(_FED_BY)}"
    else:
        why = f"the target, {edge.target_type}, is fed by {fed}, not by {edge.source_type}"
    return f"edge {edge.source} → {edge.target}: unsupported edge kind ({why})"


def classify_edges(
    pipeline: Pipeline, task_ids: dict[str, str], path: Path
) -> tuple[dict[str, dict[str, list[EdgeIn]]], set[tuple[str, str]]]:
    """Incoming edges per node by kind, and the task dependencies (those through left-out deployment
    nodes included: deployments.py says what else those edges would have carried)."""
    incoming: dict[str, dict[str, list[EdgeIn]]] = {
        n: {"input": [], "parameter": [], "env": []} for n in task_ids
    }
    deps: set[tuple[str, str]] = set()
    for edge in pipeline.edges:
        _check_ends(edge, pipeline, path)
        if edge.source_node not in task_ids or edge.target_node not in task_ids:
            continue  # an edge into or out of a deployment node
        deps.add((task_ids[edge.source_node], task_ids[edge.target_node]))
        kind = _KINDS.get((edge.target_type, edge.source_type))
        if kind is not None:
            source_task, source = task_ids[edge.source_node], SourceKind(edge.source_type)
            item = EdgeIn(source_task, edge.source_node, source, edge.source_key, edge.target_key)
            incoming[edge.target_node][kind].append(item)
        elif not (edge.source_type == "dependency" and edge.target_type == "dependency"):
            raise PipelineFileError(str(path), _unsupported(edge), f"pipeline {pipeline.name}")
    return incoming, deps


def pipeline_params(
    pipeline: Pipeline, task_ids: dict[str, str], steps: dict[str, Step], path: Path
) -> tuple[dict[str, ParamSpec], dict[str, dict[str, list[str]]]]:
    """Run parameters for pipeline parameters, and per node: pipeline parameter → node parameters."""
    params: dict[str, ParamSpec] = {}
    targets: dict[str, dict[str, list[str]]] = {}
    # a task node's step may take parameters its variants set; Valohai checks only execution nodes
    executions = {n.name for n in pipeline.nodes if isinstance(n, ExecutionNode)}
    for pp in pipeline.parameters:
        if pp.name in RESERVED_PARAMS:
            raise PipelineFileError(str(path), f"pipeline parameter {pp.name!r} is a reserved name")
        json_type = None
        for target in pp.targets:
            node, kind, name = [*target.split(".", 2), "", ""][:3]
            if node not in task_ids or not kind.startswith("parameter"):
                why = (
                    f"node {node!r} is not an execution or task node of the pipeline"
                    + _suggest(node, list(task_ids))
                    if node not in task_ids
                    else f"its type is {kind!r}; did you mean 'parameter'?"
                )
                raise PipelineFileError(
                    str(path),
                    f"pipeline parameter {pp.name!r}: target {target!r} is not node.parameter.name: {why}",
                    f"pipeline {pipeline.name}",
                )
            targets.setdefault(node, {}).setdefault(pp.name, []).append(name)
            declared = steps[node].parameters.get(name)
            if declared is None and node in executions:
                step = steps[node]
                problem = (
                    f"pipeline parameter {pp.name!r}: target {target!r} names parameter {name!r}, which "
                    f"step {step.name!r} does not declare" + _suggest(name, list(step.parameters))
                )
                raise PipelineFileError(str(path), problem, f"pipeline {pipeline.name}")
            if declared is not None and json_type is None:
                json_type = "array" if declared.multiple else _PARAM_TYPES.get(declared.type)
        if isinstance(pp.default, list):
            json_type = "array"
        description = pp.description or f"sets {', '.join(pp.targets)}"
        params[pp.name] = ParamSpec(pp.default, description, [json_type, "null"] if json_type else None)
    return params, targets
