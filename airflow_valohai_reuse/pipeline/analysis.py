"""A pipeline of a valohai.yaml, checked and resolved into what its DAG is made of.

No Airflow object is made here; every PipelineFileError a file can raise is raised here, so the
drop-in's check of broken files costs only this.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from valohai_yaml.objs import Config, Pipeline, Step, Task
from valohai_yaml.objs.pipelines.deployment_node import DeploymentNode
from valohai_yaml.objs.pipelines.execution_node import ExecutionNode
from valohai_yaml.objs.pipelines.node import Node
from valohai_yaml.objs.pipelines.task_node import TaskNode

from airflow_valohai_reuse.contracts import STATUS_TASK
from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.pipeline.actions import Action, ActionError, node_actions
from airflow_valohai_reuse.pipeline.commits import CommitReader, CommitRef, commit_notes
from airflow_valohai_reuse.pipeline.deployments import deployment_notes, through_deployments
from airflow_valohai_reuse.pipeline.lint import lint
from airflow_valohai_reuse.pipeline.pipelinefile import config_of, declared_names, read_items
from airflow_valohai_reuse.pipeline.projectconfig import ProjectConfig, load_project_config
from airflow_valohai_reuse.pipeline.spec import EdgeIn, ParamSpec
from airflow_valohai_reuse.pipeline.stepdags import PREFIX as STEP_PREFIX
from airflow_valohai_reuse.pipeline.stepdags import step_pipelines
from airflow_valohai_reuse.pipeline.stepdef import effective_step
from airflow_valohai_reuse.pipeline.tasknodes import Sweep, sweep_for, sweep_notes
from airflow_valohai_reuse.pipeline.wiring import classify_edges, pipeline_params
from airflow_valohai_reuse.settings import load_settings


def safe_id(name: str) -> str:
    """An Airflow id for a Valohai name: characters outside [A-Za-z0-9_.-] become ``_``."""
    return re.sub(r"[^\w.-]", "_", name)[:250]


STANDALONE = (
    "standalone executions of step {step!r} (step-dags): one node, the step's parameters as Params, "
    "reuse on unless the run turns it off"
)


def check_file(path: str | Path) -> None:
    """Every check :func:`build_dags` makes, without making DAGs; raises PipelineFileError."""
    for _ in analyses(path, None, "", None):
        pass


def analyses(
    path: str | Path, repository: str | Path | None, prefix: str, only_dag_id: str | None
) -> Iterator[tuple[str, Analysis]]:
    path = Path(path).resolve()
    data = read_items(path)
    if only_dag_id is not None and not _may_define(data, prefix, only_dag_id):
        return  # a task's worker wants one DAG: another file is neither validated nor analysed
    config = config_of(data, path)
    repo = Path(repository).resolve() if repository else path.parent
    settings = load_settings()
    project = load_project_config(path, settings.code_scope)
    commits = CommitReader(path, repo)
    seen: set[str] = set()
    found: list[tuple[str, Analysis]] = []
    wanted = settings.step_dags if project.step_dags is None else project.step_dags
    for pipeline in [*config.pipelines.values(), *step_pipelines(config, wanted, path)]:
        dag_id = prefix + safe_id(pipeline.name)
        if only_dag_id is not None and dag_id != only_dag_id:
            continue
        if dag_id in seen:
            raise PipelineFileError(
                str(path), f"two pipelines map to DAG id {dag_id!r}", f"pipeline {pipeline.name}"
            )
        seen.add(dag_id)
        analysis = analyse(config, pipeline, path, repo, project, commits)
        if pipeline.name not in config.pipelines:
            step = next(iter(analysis.steps.values())).name
            analysis.notes.insert(0, STANDALONE.format(step=step))
        found.append((dag_id, analysis))
    problem, warnings = lint(config, path)  # after the checks above, whose words are more precise
    if problem is not None:
        raise problem
    for _, analysis in found:
        analysis.notes += warnings
    yield from found


def _may_define(data: object, prefix: str, dag_id: str) -> bool:
    """Whether a valohai.yaml's YAML may define DAG ``dag_id``: one of its pipelines or steps has that
    id, or its names cannot be read without parsing it."""
    names = declared_names(data)
    if names is None:
        return True
    candidates = [*names["pipeline"], *(STEP_PREFIX + step for step in names["step"])]
    return any(prefix + safe_id(name) == dag_id for name in candidates)


def _node_config(
    config: Config, node: ExecutionNode | TaskNode, where: str, commits: CommitReader
) -> tuple[Config, CommitRef | None, str]:
    """The valohai.yaml a node's step (and task blueprint) come from, its commit, and how to name it."""
    if not node.commit:
        return config, None, ""
    source = commits.read(node.name, node.commit, where)
    return source.config, source.ref, f" in valohai.yaml at commit {node.commit!r}"


def _step_name(config: Config, node: ExecutionNode | TaskNode, path: Path, where: str, at: str) -> str:
    if isinstance(node, TaskNode) and node.task:
        if node.task not in config.tasks:
            raise PipelineFileError(
                str(path),
                f"task node {node.name!r} uses task blueprint {node.task!r}, which is not defined{at}",
                where,
            )
        return config.tasks[node.task].step
    return str(node.step)


def _step_of(
    config: Config,
    node: ExecutionNode | TaskNode,
    path: Path,
    where: str,
    plain: dict[str, Step],
    at: str = "",
) -> Step:
    """The node's effective step; nodes that override nothing share one copy per step (``plain``)."""
    step = _step_name(config, node, path, where, at)
    if step not in config.steps:
        close = difflib.get_close_matches(step, list(config.steps), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PipelineFileError(
            str(path), f"node {node.name!r} uses step {step!r}, which is not defined{at}{hint}", where
        )
    if node.override is not None:
        return effective_step(config.steps[step], node.override)
    key = f"{at}\0{step}"
    if key not in plain:
        plain[key] = effective_step(config.steps[step], None)
    return plain[key]


def _actions(node: Node, path: Path, where: str) -> tuple[tuple[Action, ...], list[str]]:
    try:
        return node_actions(node)
    except ActionError as exc:
        raise PipelineFileError(str(path), f"node {node.name!r}: {exc}", where) from None


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
        if task_id == STATUS_TASK:
            raise PipelineFileError(
                str(path),
                f"node name {node.name!r} is the task id of the pipeline's result task; rename the node",
                f"pipeline {pipeline.name}",
            )
        if task_id in ids.values():
            raise PipelineFileError(
                str(path), f"two nodes map to task id {task_id!r}", f"pipeline {pipeline.name}"
            )
        ids[node.name] = task_id
    return ids


@dataclass(kw_only=True)
class Analysis:
    """What a pipeline turns into before any Airflow object is made (made with keywords: its parts
    are many, and several of one type)."""

    pipeline: Pipeline
    path: Path
    repo: Path
    task_ids: dict[str, str]
    nodes: dict[str, Node]
    steps: dict[str, Step]
    incoming: dict[str, dict[str, list[EdgeIn]]]
    deps: set[tuple[str, str]]
    params: dict[str, ParamSpec]  # the DAG's Params, made by the factory
    targets: dict[str, dict[str, list[str]]]
    sweeps: dict[str, Sweep]
    project: ProjectConfig
    notes: list[str]
    #: nodes that run a step from another commit: node name → where their code comes from
    commits: dict[str, CommitRef] = field(default_factory=dict)
    #: task nodes made from a ``task:`` blueprint: node name → the blueprint
    blueprints: dict[str, Task] = field(default_factory=dict)
    #: node name → the actions it has (``actions:``)
    actions: dict[str, tuple[Action, ...]] = field(default_factory=dict)


def analyse(
    config: Config,
    pipeline: Pipeline,
    path: Path,
    repo: Path,
    project: ProjectConfig,
    commits: CommitReader | None = None,
) -> Analysis:
    commits = commits or CommitReader(path, repo)
    where = f"pipeline {pipeline.name}"
    task_ids = _task_ids(pipeline, path)
    nodes: dict[str, Node] = {}
    for node in pipeline.nodes:  # the first node of a name, as Pipeline.get_node_by(name=…) finds it
        nodes.setdefault(node.name, node)
    incoming, deps = classify_edges(pipeline, task_ids, path)
    ordered = through_deployments(pipeline, task_ids) - deps
    deps |= ordered
    plain: dict[str, Step] = {}
    steps: dict[str, Step] = {}
    sweeps: dict[str, Sweep] = {}
    refs: dict[str, CommitRef] = {}
    blueprints: dict[str, Task] = {}
    actions: dict[str, tuple[Action, ...]] = {}
    notes: list[str] = []
    for name in task_ids:
        node = nodes[name]
        assert isinstance(node, (ExecutionNode, TaskNode))
        node_config, ref, at = _node_config(config, node, where, commits)
        steps[name] = _step_of(node_config, node, path, where, plain, at)
        if ref is not None:
            refs[name] = ref
        actions[name], unknown = _actions(node, path, where)
        notes += [
            f"node {name!r}: action part {u} is not applied (not a word Valohai documents)" for u in unknown
        ]
        if isinstance(node, TaskNode):
            sweeps[name] = sweep_for(
                node_config, pipeline, node, steps[name], path, incoming[name]["parameter"]
            )
            if node.task:
                blueprints[name] = node_config.tasks[node.task]
    params, targets = pipeline_params(pipeline, task_ids, steps, path)
    task_notes = [n for name, s in sweeps.items() for n in sweep_notes(name, s, incoming[name]["parameter"])]
    notes = deployment_notes(pipeline, task_ids, steps, ordered) + commit_notes(refs) + task_notes + notes
    return Analysis(
        pipeline=pipeline,
        path=path,
        repo=repo,
        task_ids=task_ids,
        nodes=nodes,
        steps=steps,
        incoming=incoming,
        deps=deps,
        params=params,
        targets=targets,
        sweeps=sweeps,
        project=project,
        notes=notes,
        commits=refs,
        blueprints=blueprints,
        actions=actions,
    )
