"""Manual reuse: ``reuse_nodes`` pins nodes to past executions, checked before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from airflow_valohai_reuse.errors import ManualReuseError
from airflow_valohai_reuse.pipeline.spec import PipelineSpec
from airflow_valohai_reuse.records import Execution
from airflow_valohai_reuse.runtime.inputs import glob_match


class ExecutionSource(Protocol):
    def get(self, execution_id: str) -> Execution | None: ...


def _problem(node: str, execution_id: Any, spec: PipelineSpec, cache: ExecutionSource) -> str | None:
    if node not in spec.nodes:
        return f"node {node!r} is not in pipeline {spec.name!r} (nodes: {', '.join(sorted(spec.nodes))})"
    if spec.nodes[node].mapped:
        return f"node {node!r} is a task node (a parameter sweep); its variants cannot share one execution"
    if not isinstance(execution_id, str) or not execution_id:
        return f"node {node!r}: execution id must be a non-empty string, got {execution_id!r}"
    execution = cache.get(execution_id)
    if execution is None:
        return f"node {node!r}: no successful execution with id {execution_id!r}"
    wanted = spec.nodes[node].step
    if execution.step != wanted:
        return (
            f"node {node!r} runs step {wanted!r} but execution {execution_id} is of step {execution.step!r}"
        )
    names = [output.name for output in execution.outputs]
    for pattern in spec.nodes[node].output_globs:
        if not any(glob_match(name, pattern) for name in names):
            return (
                f"node {node!r}: execution {execution_id} has no output matching {pattern!r}, "
                "which a downstream edge needs"
            )
    return None


def check_pins(pins: Mapping[str, Any], spec: PipelineSpec, cache: ExecutionSource) -> dict[str, Execution]:
    """Every pin of the run, resolved; any problem stops the node with all problems named."""
    if not isinstance(pins, Mapping):
        raise ManualReuseError(f"reuse_nodes must be an object of node name to execution id, got {pins!r}")
    problems = [p for node, eid in pins.items() if (p := _problem(node, eid, spec, cache))]
    if problems:
        raise ManualReuseError("reuse_nodes: " + "; ".join(problems))
    return {node: cache.get(eid) for node, eid in pins.items()}  # type: ignore[misc]
