"""What the factory hands each node task: plain data about the node and its pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valohai_yaml.objs import Step

from airflow_valohai_reuse.contracts import SourceKind
from airflow_valohai_reuse.fingerprint.scope import CodeScope

if TYPE_CHECKING:
    from airflow_valohai_reuse.pipeline.actions import Action
    from airflow_valohai_reuse.pipeline.commits import CommitRef


@dataclass(frozen=True)
class ParamSpec:
    """A run parameter (an Airflow Param in the DAG): its default, words, and JSON Schema type."""

    default: Any
    description: str
    type: list[str | None] | None = None


@dataclass(frozen=True)
class EdgeIn:
    """One incoming edge: from which task, which socket kind and key, into which of ours."""

    source_task: str
    source_node: str
    source_kind: SourceKind
    source_key: str
    target_key: str


@dataclass(frozen=True)
class NodeSpec:
    """Everything a node task needs besides the run's params and its upstream XComs."""

    pipeline: str
    node: str
    step: Step
    repository: Path
    source_file: str
    inputs_from_edges: tuple[EdgeIn, ...] = ()
    parameters_from_edges: tuple[EdgeIn, ...] = ()
    environment_from_edges: tuple[EdgeIn, ...] = ()
    #: pipeline parameter name → this node's parameter names it sets
    pipeline_parameters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: pipeline parameter name → its valohai.yaml default: what a null (or absent) value of it means
    #: (a secret's Param holds null, so that its default is never stored in Airflow: params.py); out of
    #: the repr, which a task node's serialized partial arguments hold
    pipeline_defaults: dict[str, Any] = field(default_factory=dict, repr=False)
    append_edges_to_defaults: bool = False
    code_scope: CodeScope = field(default_factory=CodeScope)
    #: how long an execution of this node stays reusable (None: forever)
    ttl: timedelta | None = None
    #: for a task node spread at run time: the metadata edge its variants come from
    variants_from: EdgeIn | None = None
    #: secret environment variables whose salted hash enters the fingerprint (valohai-reuse.yaml)
    fingerprint_secrets: tuple[str, ...] = ()
    #: a node that runs its step from another commit: where its code comes from (None: the project)
    commit: CommitRef | None = None
    #: the node's ``actions`` (stop-pipeline, error-pipeline and noop act in its task)
    actions: tuple[Action, ...] = ()
    #: a task node's secret variant values by variant index, which its mapped task's expand input
    #: holds as references (masked.py), so that they are never stored in Airflow
    secret_variants: tuple[dict[str, Any], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class PipelineNode:
    task_id: str
    step: str
    #: output globs that downstream edges read from this node
    output_globs: tuple[str, ...] = ()
    #: a task node (parameter sweep): one mapped task instance per variant
    mapped: bool = False


@dataclass(frozen=True)
class PipelineSpec:
    """The pipeline as every node sees it, so any node can check the whole run's pins (``reuse_nodes``,
    ``reuse_from_run``) and conf."""

    name: str
    nodes: dict[str, PipelineNode]
    #: the pipeline's ``reuse-executions``: what a run's null ``reuse_executions`` means
    reuse_executions: bool = False
    #: the pipeline parameters' names (the DAG's Params besides the run options)
    parameters: tuple[str, ...] = ()
