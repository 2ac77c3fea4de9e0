"""valohai.yaml → Airflow: one DAG per pipeline, one ReusableDockerOperator per execution node.

A task node (parameter sweep) becomes one mapped ReusableDockerOperator, one map index per variant.

This is the only module that knows both formats.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param
from valohai_yaml.objs import Config, Pipeline, Step
from valohai_yaml.objs.pipelines.deployment_node import DeploymentNode
from valohai_yaml.objs.pipelines.edge_merge_mode import EdgeMergeMode
from valohai_yaml.objs.pipelines.execution_node import ExecutionNode
from valohai_yaml.objs.pipelines.task_node import TaskNode

from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.pipelinefile import load_config
from airflow_valohai_reuse.projectconfig import ProjectConfig, load_project_config
from airflow_valohai_reuse.settings import load_settings
from airflow_valohai_reuse.spec import EdgeIn, NodeSpec, PipelineNode, PipelineSpec
from airflow_valohai_reuse.stepdef import effective_step
from airflow_valohai_reuse.tasknodes import Sweep, sweep_for, sweep_notes
from airflow_valohai_reuse.wiring import classify_edges, omitted, pipeline_params

log = logging.getLogger(__name__)

START_DATE = datetime(2024, 1, 1, tzinfo=UTC)


def safe_id(name: str) -> str:
    """An Airflow id for a Valohai name: characters outside [A-Za-z0-9_.-] become ``_``."""
    return re.sub(r"[^\w.-]", "_", name)[:250]


def build_dags(
    path: str | Path,
    *,
    dag_id_prefix: str = "",
    schedules: Mapping[str, Any] | None = None,
    repository: str | Path | None = None,
    operator_kwargs: Mapping[str, Any] | None = None,
    only_dag_id: str | None = None,
) -> dict[str, DAG]:
    """Build one DAG per pipeline of a valohai.yaml, without side effects.

    ``schedules`` maps DAG ids (or pipeline names) to a schedule; ``repository`` is the code folder
    mounted as /valohai/repository (default: the file's folder); ``operator_kwargs`` go to every
    node task (``docker_url``, ``network_mode``, ``retries``…); ``only_dag_id`` builds one DAG.
    """
    path = Path(path).resolve()
    config = load_config(path)
    repo = Path(repository).resolve() if repository else path.parent
    project = load_project_config(path, load_settings().code_scope)
    kwargs = dict(operator_kwargs or {})
    dags: dict[str, DAG] = {}
    for pipeline in config.pipelines.values():
        dag_id = dag_id_prefix + safe_id(pipeline.name)
        if only_dag_id is not None and dag_id != only_dag_id:
            continue
        if dag_id in dags:
            raise PipelineFileError(
                str(path), f"two pipelines map to DAG id {dag_id!r}", f"pipeline {pipeline.name}"
            )
        schedule = (schedules or {}).get(dag_id, (schedules or {}).get(pipeline.name))
        analysis = _analyse(config, pipeline, path, repo, project)
        dags[dag_id] = _build_dag(analysis, dag_id, schedule, kwargs)
    return dags


def _step_name(config: Config, node: ExecutionNode | TaskNode, path: Path, pipeline: Pipeline) -> str:
    if isinstance(node, TaskNode) and node.task:
        if node.task not in config.tasks:
            raise PipelineFileError(
                str(path),
                f"task node {node.name!r} uses task blueprint {node.task!r}, which is not defined",
                f"pipeline {pipeline.name}",
            )
        return config.tasks[node.task].step
    return str(node.step)


def _step_of(config: Config, node: ExecutionNode | TaskNode, path: Path, pipeline: Pipeline) -> Step:
    step = _step_name(config, node, path, pipeline)
    if step not in config.steps:
        raise PipelineFileError(
            str(path),
            f"node {node.name!r} uses step {step!r}, which is not defined",
            f"pipeline {pipeline.name}",
        )
    return effective_step(config.steps[step], node.override)


def _task_ids(pipeline: Pipeline, path: Path) -> dict[str, str]:
    ids: dict[str, str] = {}
    for node in pipeline.nodes:
        if isinstance(node, DeploymentNode):
            continue
        if not isinstance(node, (ExecutionNode, TaskNode)):
            raise PipelineFileError(
                str(path),
                f"node {node.name!r} is a {node.type} node; only execution and task nodes become tasks",
                f"pipeline {pipeline.name}",
            )
        task_id = safe_id(node.name)
        if task_id in ids.values():
            raise PipelineFileError(
                str(path), f"two nodes map to task id {task_id!r}", f"pipeline {pipeline.name}"
            )
        ids[node.name] = task_id
    return ids


def _resource_kwargs(step: Step) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    data = step.resources.get_data() or {}
    gpus = (data.get("devices") or {}).get("nvidia.com/gpu")
    if gpus:
        from docker.types import DeviceRequest

        kwargs["device_requests"] = [DeviceRequest(count=int(gpus), capabilities=[["gpu"]])]
    cpu = (data.get("cpu") or {}).get("max")
    if cpu:
        kwargs["cpus"] = float(cpu)
    memory = (data.get("memory") or {}).get("max")
    if memory:
        kwargs["mem_limit"] = f"{int(memory)}m"
    if step.time_limit:
        kwargs["execution_timeout"] = step.time_limit
    return kwargs


def _doc(pipeline: Pipeline, path: Path, notes: list[str]) -> str:
    lines = [f"Pipeline **{pipeline.name}** from `{path}`.", ""]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines)


def _mapped(partial: Any, sweep: Sweep, task_id: str, tasks: dict[str, Any]) -> Any:
    """A task node: one mapped task instance per variant, fixed or spread from upstream metadata.

    Spread variants come from a small task that reads the upstream node's metadata, because
    Airflow maps only over return values.
    """
    if sweep.spread_from is None:
        return partial.expand(variant=sweep.variants)
    from airflow.sdk import XComArg, task

    from airflow_valohai_reuse.operator import XCOM_KEY
    from airflow_valohai_reuse.variants import spread

    edge = sweep.spread_from
    source = tasks[edge.source_task]
    variants = task(task_id=f"{task_id}__variants", task_display_name=f"{edge.target_key} variants")(spread)(
        XComArg(source, key=XCOM_KEY), edge.source_key, edge.target_key
    )
    return partial.expand(variant=variants)


@dataclass
class _Analysis:
    """What a pipeline turns into before any Airflow object is made."""

    pipeline: Pipeline
    path: Path
    repo: Path
    task_ids: dict[str, str]
    steps: dict[str, Step]
    incoming: dict[str, dict[str, list[EdgeIn]]]
    deps: set[tuple[str, str]]
    params: dict[str, Param]
    targets: dict[str, dict[str, list[str]]]
    sweeps: dict[str, Sweep]
    project: ProjectConfig
    notes: list[str]


def _analyse(config: Config, pipeline: Pipeline, path: Path, repo: Path, project: ProjectConfig) -> _Analysis:
    task_ids = _task_ids(pipeline, path)
    incoming, deps, edge_notes = classify_edges(pipeline, task_ids, path)
    steps = {name: _step_of(config, pipeline.get_node_by(name=name), path, pipeline) for name in task_ids}
    params, targets = pipeline_params(pipeline, task_ids, steps, path)
    sweeps: dict[str, Sweep] = {
        name: sweep_for(config, pipeline, node, steps[name], path, incoming[name]["parameter"])
        for name in task_ids
        if isinstance(node := pipeline.get_node_by(name=name), TaskNode)
    }
    task_notes = [n for name, s in sweeps.items() for n in sweep_notes(name, s, incoming[name]["parameter"])]
    notes = omitted(pipeline) + edge_notes + task_notes
    return _Analysis(
        pipeline, path, repo, task_ids, steps, incoming, deps, params, targets, sweeps, project, notes
    )


def _pipeline_spec(a: _Analysis) -> PipelineSpec:
    out_globs: dict[str, list[str]] = {name: [] for name in a.task_ids}
    for edges in a.incoming.values():
        for edge in edges["input"]:
            if edge.source_kind == "output":
                out_globs[edge.source_node].append(edge.source_key)
    nodes = {
        n: PipelineNode(a.task_ids[n], a.steps[n].name, tuple(out_globs[n]), n in a.sweeps)
        for n in a.task_ids
    }
    return PipelineSpec(a.pipeline.name, nodes)


def _node_spec(a: _Analysis, name: str) -> NodeSpec:
    node = a.pipeline.get_node_by(name=name)
    sweep = a.sweeps.get(name)
    spread = sweep.spread_from if sweep else None
    return NodeSpec(
        pipeline=a.pipeline.name,
        node=name,
        step=a.steps[name],
        repository=a.repo,
        source_file=str(a.path),
        inputs_from_edges=tuple(a.incoming[name]["input"]),
        parameters_from_edges=tuple(e for e in a.incoming[name]["parameter"] if e != spread),
        environment_from_edges=tuple(a.incoming[name]["env"]),
        pipeline_parameters={k: tuple(v) for k, v in a.targets.get(name, {}).items()},
        append_edges_to_defaults=node.edge_merge_mode == EdgeMergeMode.APPEND,
        code_scope=a.project.scope_for(a.steps[name].name),
        ttl=a.project.ttl_for(a.pipeline.name, a.steps[name].name),
        variants_from=spread,
    )


def _dag(a: _Analysis, dag_id: str, schedule: Any) -> DAG:
    pipeline = a.pipeline
    return DAG(
        dag_id,
        dag_display_name=pipeline.name,
        description=f"valohai.yaml pipeline {pipeline.name}",
        doc_md=_doc(pipeline, a.path, a.notes),
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        tags=["valohai"],
        params={
            "reuse_executions": Param(
                bool(pipeline.reuse_executions),
                type="boolean",
                description="Reuse the outputs of identical past executions instead of running.",
            ),
            "reuse_nodes": Param(
                {},
                type="object",
                description='Pin nodes to past executions: {"node name": "execution id"}.',
            ),
            **a.params,
        },
    )


def _build_dag(a: _Analysis, dag_id: str, schedule: Any, operator_kwargs: dict[str, Any]) -> DAG:
    from airflow_valohai_reuse.operator import ReusableDockerOperator

    spec = _pipeline_spec(a)
    dag = _dag(a, dag_id, schedule)
    feeds = {s.spread_from.source_node for s in a.sweeps.values() if s.spread_from is not None}
    tasks: dict[str, Any] = {}
    # A node whose metadata spreads a task node's variants is made first: the mapping refers to it.
    for name in sorted(a.task_ids, key=lambda n: n not in feeds):
        task_id = a.task_ids[name]
        kwargs = {**_resource_kwargs(a.steps[name]), **operator_kwargs}
        kwargs.setdefault("retries", 0)
        kwargs.setdefault("retry_delay", timedelta(seconds=30))
        kwargs.update(
            task_id=task_id, task_display_name=name, node=_node_spec(a, name), pipeline=spec, dag=dag
        )
        if name in a.sweeps:
            tasks[task_id] = _mapped(ReusableDockerOperator.partial(**kwargs), a.sweeps[name], task_id, tasks)
        else:
            tasks[task_id] = ReusableDockerOperator(**kwargs)
    for source, target in sorted(a.deps):
        tasks[source] >> tasks[target]
    return dag
