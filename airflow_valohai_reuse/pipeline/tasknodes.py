"""Task nodes (parameter sweeps) in a DAG: their variants, fixed when the DAG is built or spread
at run time from an upstream node's list-valued metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valohai_yaml.objs import Config, Pipeline, Step
from valohai_yaml.objs.pipelines.task_node import TaskNode

from airflow_valohai_reuse.contracts import SourceKind
from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.pipeline.spec import EdgeIn
from airflow_valohai_reuse.pipeline.variants import VariantError, blueprint_axes, grid


@dataclass(frozen=True)
class Sweep:
    """A task node's variants: a fixed list, or the spread of one upstream metadata value."""

    variants: list[dict[str, Any]]
    spread_from: EdgeIn | None = None


def list_axes(pipeline: Pipeline, node: TaskNode, step: Step) -> dict[str, list[Any]]:
    """Parameters of a task node that a pipeline parameter with a list default sweeps."""
    axes: dict[str, list[Any]] = {}
    for pp in pipeline.parameters:
        if not isinstance(pp.default, list):
            continue
        for target in pp.targets:
            target_node, _kind, name = [*target.split(".", 2), "", ""][:3]
            declared = step.parameters.get(name)
            if target_node == node.name and not (declared is not None and declared.multiple):
                axes[name] = list(pp.default)
    return axes


def static_variants(config: Config, pipeline: Pipeline, node: TaskNode, step: Step, path: Path) -> list[dict]:
    """A task node's variants: its blueprint's grid, list-valued pipeline parameters, or one ``{}``."""
    where = f"pipeline {pipeline.name}"
    task = config.tasks[node.task] if node.task else None
    try:
        axes = blueprint_axes(task) if task else {}
    except VariantError as exc:
        problem = f"task node {node.name!r} (task {node.task!r}): {exc}"
        raise PipelineFileError(str(path), problem, where) from None
    axes.update(list_axes(pipeline, node, step))
    sets = task.parameter_sets if task else []
    names = [*axes, *(name for ps in sets for name in ps)]
    unknown = [name for name in names if name not in step.parameters]
    if unknown:
        raise PipelineFileError(
            str(path),
            f"task node {node.name!r} sweeps {unknown[0]!r}, which is not a parameter of step {step.name!r}",
            where,
        )
    return grid(axes, sets)


def sweep_for(
    config: Config, pipeline: Pipeline, node: TaskNode, step: Step, path: Path, parameter_edges: list[EdgeIn]
) -> Sweep:
    """Fixed variants when the blueprint or pipeline parameters give them; otherwise, with exactly
    one metadata edge into the node, one variant per item of that metadata value at run time."""
    variants = static_variants(config, pipeline, node, step, path)
    metadata = [e for e in parameter_edges if e.source_kind is SourceKind.METADATA]
    if variants == [{}] and len(metadata) == 1:
        return Sweep([], metadata[0])
    return Sweep(variants)


def sweep_notes(name: str, sweep: Sweep, parameter_edges: list[EdgeIn]) -> list[str]:
    if sweep.spread_from is not None:
        e = sweep.spread_from
        return [
            f"task node {name!r}: one variant per item of {e.source_node}'s metadata {e.source_key!r}, "
            f"as parameter {e.target_key!r}, known when {e.source_node} finishes"
        ]
    swept = sorted({key for variant in sweep.variants for key in variant})
    notes = [
        f"task node {name!r}: {len(sweep.variants)} variant(s) as mapped task instances"
        + (f", sweeping {', '.join(swept)}" if swept else "")
    ]
    notes += [
        f"edge {e.source_node}.metadata.{e.source_key} → {name}.parameter.{e.target_key}: the node has "
        "fixed variants, so a list value is not spread; every variant receives the value as it is"
        for e in parameter_edges
        if e.source_kind is SourceKind.METADATA
    ]
    return notes
