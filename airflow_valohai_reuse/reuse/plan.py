"""Predict, without starting a container, what a run of a pipeline would reuse and run.

Each node goes through the same :func:`~airflow_valohai_reuse.reuse.resolve.resolve` and
:func:`~airflow_valohai_reuse.reuse.decide.decide` a run uses, with the same image identity; only
the lease is looked at rather than claimed. A node downstream of a predicted run is ``unknown``: its
inputs do not exist yet. The pipeline is read from its valohai.yaml, not from Airflow objects.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.cache.failopen import open_cache
from airflow_valohai_reuse.contracts import ArtifactStore, Cache, Kind, PlanStatus, Published, Upstream
from airflow_valohai_reuse.errors import ValohaiReuseError
from airflow_valohai_reuse.pipeline.analysis import Analysis, analyses
from airflow_valohai_reuse.pipeline.options import REUSE_FROM_RUN, REUSE_NODES, refusal, reuse_on
from airflow_valohai_reuse.pipeline.params import dag_params
from airflow_valohai_reuse.pipeline.spec import NodeSpec
from airflow_valohai_reuse.pipeline.specs import node_spec, pipeline_spec, run_order
from airflow_valohai_reuse.pipeline.variants import merge_executions, spread
from airflow_valohai_reuse.reuse.decide import REUSE_OFF, Hit, Miss, Wait, decide
from airflow_valohai_reuse.reuse.image import hook_client, image_id
from airflow_valohai_reuse.reuse.pins import check_pins
from airflow_valohai_reuse.reuse.resolve import resolve
from airflow_valohai_reuse.reuse.upstream import upstream_tasks
from airflow_valohai_reuse.settings import Settings, load_settings
from airflow_valohai_reuse.stores.registry import open_store

log = logging.getLogger(__name__)

HIT, MISS, UNKNOWN = PlanStatus.HIT, PlanStatus.MISS, PlanStatus.UNKNOWN


@dataclass
class NodePlan:
    """The prediction for one node (one variant of a task node)."""

    task_id: str
    node: str
    status: PlanStatus
    map_index: int | None = None
    source_execution: str | None = None
    saved_s: float | None = None
    reason: str = ""
    fingerprint: str | None = None
    waits_on: list[str] = field(default_factory=list)

    def words(self) -> str:
        name = self.node if self.map_index is None else f"{self.node}[{self.map_index}]"
        if self.status == HIT:
            saved = f", saves {self.saved_s:.1f} s" if self.saved_s is not None else ""
            why = f" ({self.reason})" if self.reason else ""
            return f"{name}: hit, reuses execution {self.source_execution}{saved}{why}"
        if self.status == MISS and self.reason == REUSE_OFF:
            return f"{name}: runs (reuse off)"
        if self.status == MISS:
            return f"{name}: miss, runs: {self.reason}"
        return f"{name}: unknown, waits on {', '.join(self.waits_on)}"


@dataclass
class _Context:
    params: Mapping[str, Any]
    settings: Settings
    cache: Cache
    store: ArtifactStore
    reuse: bool
    #: task id → what it would publish (a task node: each variant's)
    published: dict[str, Upstream | list[Upstream]] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)  # task ids whose outputs are not known

    def upstream(self, task_id: str) -> Upstream:
        """What a downstream node would read from the task (a task node's variants merged)."""
        found = self.published[task_id]
        return merge_executions(task_id, found) if isinstance(found, list) else found


def _plan_one(
    ctx: _Context, node: NodeSpec, task_id: str, variant: Mapping[str, Any], index: int | None
) -> tuple[NodePlan, Upstream | None]:
    waits = [t for t in upstream_tasks(node) if t in ctx.pending]
    if waits and not ctx.reuse:  # it runs whatever its inputs turn out to be
        return NodePlan(task_id, node.node, MISS, index, reason=REUSE_OFF, waits_on=waits), None
    if waits:
        return NodePlan(task_id, node.node, UNKNOWN, index, waits_on=waits), None
    upstream = {t: ctx.upstream(t) for t in upstream_tasks(node)}
    folder = Path(tempfile.mkdtemp(prefix="valohai-reuse-plan-"))
    try:
        resolved = resolve(
            node,
            params=ctx.params,
            variant=variant,
            upstream=upstream,
            inputs_dir=folder,
            cache=ctx.cache,
            settings=ctx.settings,
            image_id=lambda: image_id(
                ctx.settings.docker_url, node.step.image, lambda: hook_client(ctx.settings.docker_url), log
            ),
            logger=log,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    digest = resolved.fingerprint.digest
    found = decide(resolved, step=node.step.name, reuse=ctx.reuse, cache=ctx.cache, store=ctx.store)
    if isinstance(found, Hit):
        run = resolved.details(ctx.settings.secret_env_patterns)
        value = Upstream.of(Published.of(found.execution, Kind.REUSED, node.node, run))
        plan = NodePlan(task_id, node.node, HIT, index, found.execution.id, found.execution.duration_s)
        plan.fingerprint = digest
        return plan, value
    reason = found.reason if isinstance(found, Miss) else _waits(found)
    return NodePlan(task_id, node.node, MISS, index, reason=reason, fingerprint=digest), None


def _waits(found: Wait) -> str:
    return f"an identical execution is running now in {found.holder.describe()}: it would wait and reuse it"


def _variants(ctx: _Context, a: Analysis, name: str) -> list[dict[str, Any]] | None:
    """A task node's variants (None: not known before its upstream runs); ``[{}]`` for a node."""
    sweep = a.sweeps.get(name)
    if sweep is None:
        return [{}]
    edge = sweep.spread_from
    if edge is None:
        return sweep.variants
    if edge.source_task in ctx.pending:
        return None
    return spread(ctx.upstream(edge.source_task), edge.source_key, edge.target_key)


def _plan_node(ctx: _Context, a: Analysis, name: str, pins: Mapping[str, Any]) -> list[NodePlan]:
    node, task_id = node_spec(a, name), a.task_ids[name]
    if name in pins:
        execution = pins[name]
        ctx.published[task_id] = Upstream.of(Published.of(execution, Kind.PINNED, name))
        reason = f"pinned by {REUSE_NODES if name in (ctx.params.get(REUSE_NODES) or {}) else REUSE_FROM_RUN}"
        return [NodePlan(task_id, name, HIT, None, execution.id, execution.duration_s, reason=reason)]
    variants = _variants(ctx, a, name)
    if variants is None:
        ctx.pending.add(task_id)
        waits = [a.sweeps[name].spread_from.source_task]
        status, reason = (UNKNOWN, "") if ctx.reuse else (MISS, REUSE_OFF)
        return [NodePlan(task_id, name, status, reason=reason, waits_on=waits)]
    mapped = name in a.sweeps
    results = [
        _plan_one(ctx, node, task_id, variant, index if mapped else None)
        for index, variant in enumerate(variants)
    ]
    values = [value for _, value in results if value is not None]
    if len(values) < len(results):
        ctx.pending.add(task_id)
    else:
        ctx.published[task_id] = values if mapped else values[0]
    return [plan for plan, _ in results]


def _analysis(path: str | Path, pipeline: str, prefix: str) -> tuple[str, Analysis]:
    """The DAG id and analysis of ``pipeline``, given by its name (its DAG id is then the drop-in's,
    with ``dag_id_prefix``) or by its DAG id (any prefix, for DAGs a DAG file built with its own): the
    DAG id names the runs whose ledger ``reuse_from_run`` reads."""
    found = dict(analyses(path, None, "", None))
    for plain, analysis in found.items():
        if pipeline in (prefix + plain, analysis.pipeline.name, plain):
            return prefix + plain, analysis
    suffixes = sorted((p for p in found if p and pipeline.endswith(p)), key=len, reverse=True)
    if suffixes:
        return pipeline, found[suffixes[0]]
    raise ValohaiReuseError(f"no pipeline {pipeline!r} in {path}; there are: {', '.join(found)}")


def plan(path: str | Path, pipeline: str, conf: Mapping[str, Any] | None = None) -> list[NodePlan]:
    """Predict every node of ``pipeline`` (its name or DAG id) in the valohai.yaml at ``path``, for a
    run triggered with ``conf``; starts no container."""
    settings = load_settings()
    dag_id, a = _analysis(path, pipeline, settings.dag_id_prefix)
    params = _params(a, dict(conf or {}))
    cache = open_cache(settings.sql_alchemy_conn, log)
    store = open_store(settings.artifact_store, settings.aws_conn_id, cache.blob_digests())
    spec = pipeline_spec(a)
    reuse = reuse_on(params, spec.reuse_executions)
    ctx = _Context(params, settings, cache, store, reuse)
    pins = check_pins(params.get(REUSE_NODES), spec, cache, params.get(REUSE_FROM_RUN), dag_id=dag_id)
    return [found for name in run_order(a) for found in _plan_node(ctx, a, name, pins)]


def _params(a: Analysis, conf: dict[str, Any]) -> dict[str, Any]:
    """The run's params as Airflow would make them from ``conf``, refused in the words the API server
    refuses a trigger with (a key the run would ignore, with a did-you-mean; a value the Params or
    the nodes refuse)."""
    patterns = load_settings().secret_env_patterns
    params = dag_params(a, patterns)
    refused = refusal(conf, {name: option.schema for name, option in params.items()}, patterns)
    if refused is not None:
        raise ValohaiReuseError(f"the trigger would refuse this conf: {refused}")
    return {name: option.default for name, option in params.items()} | conf


def as_json(plans: list[NodePlan]) -> list[dict[str, Any]]:
    return [asdict(p) for p in plans]
