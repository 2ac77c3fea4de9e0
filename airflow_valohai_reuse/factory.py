"""valohai.yaml → Airflow: one DAG per pipeline, one ReusableDockerOperator per execution node.

A task node (parameter sweep) becomes one mapped ReusableDockerOperator, one map index per variant.

This is the only module that knows both formats.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
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
from airflow_valohai_reuse.projectconfig import load_project_config
from airflow_valohai_reuse.settings import load_settings
from airflow_valohai_reuse.spec import EdgeIn, NodeSpec, PipelineNode, PipelineSpec
from airflow_valohai_reuse.stepdef import effective_step
from airflow_valohai_reuse.tasknodes import Sweep, sweep_for, sweep_notes

log = logging.getLogger(__name__)

RESERVED_PARAMS = ("reuse_executions", "reuse_nodes")
START_DATE = datetime(2024, 1, 1, tzinfo=UTC)
_PARAM_TYPES = {"integer": "integer", "float": "number", "flag": "boolean", "string": "string"}


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
        dags[dag_id] = _build_dag(config, pipeline, dag_id, schedule, path, repo, dict(operator_kwargs or {}))
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


def _omitted(pipeline: Pipeline) -> list[str]:
    notes = [
        f"deployment node {n.name!r} left out: deployments have no Airflow meaning here"
        for n in pipeline.nodes
        if isinstance(n, DeploymentNode)
    ]
    for note in notes:
        log.info("pipeline %r: %s", pipeline.name, note)
    return notes


def _classify_edges(
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


def _pipeline_params(
    pipeline: Pipeline, task_ids: dict[str, str], steps: dict[str, Step], path: Path
) -> tuple[dict[str, Param], dict[str, dict[str, list[str]]]]:
    """DAG Params for pipeline parameters, and per node: pipeline parameter → node parameters."""
    params: dict[str, Param] = {}
    targets: dict[str, dict[str, list[str]]] = {}
    for pp in pipeline.parameters.values() if isinstance(pipeline.parameters, dict) else pipeline.parameters:
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
        kwargs: dict[str, Any] = {"description": pp.description or f"sets {', '.join(pp.targets)}"}
        if json_type:
            kwargs["type"] = [json_type, "null"]
        params[pp.name] = Param(pp.default, **kwargs)
    return params, targets


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


def _build_dag(
    config: Config,
    pipeline: Pipeline,
    dag_id: str,
    schedule: Any,
    path: Path,
    repo: Path,
    operator_kwargs: dict[str, Any],
) -> DAG:
    from airflow_valohai_reuse.operator import ReusableDockerOperator

    task_ids = _task_ids(pipeline, path)
    project = load_project_config(path, load_settings().code_scope)
    incoming, deps, edge_notes = _classify_edges(pipeline, task_ids, path)
    steps = {name: _step_of(config, pipeline.get_node_by(name=name), path, pipeline) for name in task_ids}
    params, targets = _pipeline_params(pipeline, task_ids, steps, path)
    sweeps: dict[str, Sweep] = {
        name: sweep_for(config, pipeline, node, steps[name], path, incoming[name]["parameter"])
        for name in task_ids
        if isinstance(node := pipeline.get_node_by(name=name), TaskNode)
    }
    task_notes = [n for name, s in sweeps.items() for n in sweep_notes(name, s, incoming[name]["parameter"])]
    feeds = {s.spread_from.source_node for s in sweeps.values() if s.spread_from is not None}
    out_globs: dict[str, list[str]] = {name: [] for name in task_ids}
    for edges in incoming.values():
        for edge in edges["input"]:
            if edge.source_kind == "output":
                out_globs[edge.source_node].append(edge.source_key)
    spec = PipelineSpec(
        pipeline.name,
        {n: PipelineNode(task_ids[n], steps[n].name, tuple(out_globs[n]), n in sweeps) for n in task_ids},
    )
    dag = DAG(
        dag_id,
        dag_display_name=pipeline.name,
        description=f"valohai.yaml pipeline {pipeline.name}",
        doc_md=_doc(pipeline, path, _omitted(pipeline) + edge_notes + task_notes),
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
            **params,
        },
    )
    tasks = {}
    # A node whose metadata spreads a task node's variants is made first: the mapping refers to it.
    order = sorted(task_ids, key=lambda n: n not in feeds)
    for name in order:
        task_id = task_ids[name]
        node = pipeline.get_node_by(name=name)
        node_spec = NodeSpec(
            pipeline=pipeline.name,
            node=name,
            step=steps[name],
            repository=repo,
            source_file=str(path),
            inputs_from_edges=tuple(incoming[name]["input"]),
            parameters_from_edges=tuple(
                e for e in incoming[name]["parameter"] if name not in sweeps or e != sweeps[name].spread_from
            ),
            environment_from_edges=tuple(incoming[name]["env"]),
            pipeline_parameters={k: tuple(v) for k, v in targets.get(name, {}).items()},
            append_edges_to_defaults=node.edge_merge_mode == EdgeMergeMode.APPEND,
            code_scope=project.scope_for(steps[name].name),
            ttl=project.ttl_for(pipeline.name, steps[name].name),
            variants_from=sweeps[name].spread_from if name in sweeps else None,
        )
        kwargs = {**_resource_kwargs(steps[name]), **operator_kwargs}
        kwargs.setdefault("retries", 0)
        kwargs.setdefault("retry_delay", timedelta(seconds=30))
        kwargs.update(task_id=task_id, task_display_name=name, node=node_spec, pipeline=spec, dag=dag)
        if name in sweeps:
            tasks[task_id] = _mapped(ReusableDockerOperator.partial(**kwargs), sweeps[name], task_id, tasks)
        else:
            tasks[task_id] = ReusableDockerOperator(**kwargs)
    for source, target in sorted(deps):
        tasks[source] >> tasks[target]
    return dag
