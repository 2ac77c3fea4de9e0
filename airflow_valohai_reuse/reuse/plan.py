"""Predict, without starting a container, what a run of a pipeline DAG would reuse and run.

Each node goes through the same :func:`~airflow_valohai_reuse.reuse.resolve.resolve` a run uses. A node
downstream of a predicted run is ``unknown``: its inputs do not exist yet.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from airflow_valohai_reuse.cache.executions import Execution, ExecutionCache
from airflow_valohai_reuse.cache.lease import Leases
from airflow_valohai_reuse.pipeline.spec import NodeSpec, PipelineSpec
from airflow_valohai_reuse.pipeline.variants import spread
from airflow_valohai_reuse.reuse.pins import check_pins
from airflow_valohai_reuse.reuse.resolve import (
    Cache,
    find_reusable,
    merge_upstream,
    miss_reason,
    open_cache,
    publication,
    resolve,
    store_digests,
    upstream_tasks,
)
from airflow_valohai_reuse.settings import Settings, load_settings
from airflow_valohai_reuse.stores.base import ArtifactStore, open_store

log = logging.getLogger(__name__)

HIT, MISS, UNKNOWN = "hit", "miss", "unknown"


@dataclass
class NodePlan:
    """The prediction for one node (one variant of a task node)."""

    task_id: str
    node: str
    status: str
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
            return f"{name}: hit, reuses execution {self.source_execution}{saved}"
        if self.status == MISS:
            return f"{name}: miss, runs: {self.reason}"
        return f"{name}: unknown, waits on {', '.join(self.waits_on)}"


def _node_variants(task: Any) -> tuple[NodeSpec, PipelineSpec, Any] | None:
    """A node task's specs and, for a task node, its variants (a list, or an upstream reference)."""
    if hasattr(task, "partial_kwargs") and "node" in task.partial_kwargs:
        kwargs = task.partial_kwargs
        return kwargs["node"], kwargs["pipeline"], task.expand_input.value["variant"]
    if hasattr(task, "node") and hasattr(task, "pipeline"):
        return task.node, task.pipeline, None
    return None  # a helper task, such as the one that spreads a task node's variants


def _docker_image_id(image: str, settings: Settings) -> str:
    import docker

    client = docker.APIClient(base_url=settings.docker_url) if settings.docker_url else docker.from_env().api
    return client.inspect_image(image)["Id"]


@dataclass
class _Context:
    params: Mapping[str, Any]
    settings: Settings
    cache: Cache
    store: ArtifactStore
    reuse: bool
    published: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)  # task id → why its outputs are not known


def _plan_one(
    ctx: _Context, task_id: str, node: NodeSpec, variant: Mapping[str, Any], index: int | None
) -> tuple[NodePlan, dict[str, Any] | None]:
    waits = [t for t in upstream_tasks(node) if t in ctx.pending]
    if waits:
        return NodePlan(task_id, node.node, UNKNOWN, index, waits_on=waits), None
    upstream = {t: merge_upstream(t, ctx.published[t]) for t in upstream_tasks(node)}
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
            image_id=_docker_image_id(node.step.image, ctx.settings),
            logger=log,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    digest = resolved.fingerprint.digest
    if not ctx.reuse:
        return NodePlan(
            task_id, node.node, MISS, index, reason="reuse_executions is off", fingerprint=digest
        ), None
    hit = find_reusable(ctx.cache, ctx.store, resolved.fingerprint, log)
    if hit is None:
        reason, _nearest = miss_reason(ctx.cache, node.step.name, resolved.fingerprint)
        reason += _in_flight(ctx, digest)
        return NodePlan(task_id, node.node, MISS, index, reason=reason, fingerprint=digest), None
    details = {**hit.metadata, **resolved.details(ctx.settings.secret_env_patterns)}
    value = publication(hit, reused=True, details=details, node=node.node)
    return NodePlan(task_id, node.node, HIT, index, hit.id, hit.duration_s, fingerprint=digest), value


def _in_flight(ctx: _Context, fingerprint: str) -> str:
    """Where an identical execution is running now, the node would wait for it rather than run."""
    if not isinstance(ctx.cache, ExecutionCache):
        return ""
    try:
        held = Leases(ctx.cache.engine, ctx.settings.lease_seconds).current(fingerprint)
    except SQLAlchemyError:
        return ""
    if held is None:
        return ""
    return f"; an identical execution is running now in {held.describe()}: it would wait and reuse it"


def _pinned(task_id: str, node: NodeSpec, execution: Execution) -> tuple[NodePlan, dict[str, Any]]:
    value = publication(execution, reused=True, details=execution.metadata, node=node.node)
    plan = NodePlan(
        task_id, node.node, HIT, None, execution.id, execution.duration_s, reason="pinned by reuse_nodes"
    )
    return plan, value


def _spread_variants(ctx: _Context, node: NodeSpec) -> list[dict[str, Any]] | None:
    """Variants spread from upstream metadata, when that upstream's outcome is predicted."""
    edge = node.variants_from
    if edge is None or edge.source_task in ctx.pending:
        return None
    return spread(
        merge_upstream(edge.source_task, ctx.published[edge.source_task]), edge.source_key, edge.target_key
    )


def plan_dag(dag: Any, conf: Mapping[str, Any] | None = None) -> list[NodePlan]:
    """Predict every node of ``dag`` for a run triggered with ``conf``; starts no container."""
    params = {name: dag.params[name] for name in dag.params}
    params.update(conf or {})
    settings = load_settings()
    cache = open_cache(settings, log)
    ctx = _Context(
        params,
        settings,
        cache,
        open_store(settings.artifact_store, settings.aws_conn_id, store_digests(cache)),
        bool(params["reuse_executions"]),
    )
    plans: list[NodePlan] = []
    specs = {t.task_id: found for t in dag.tasks if (found := _node_variants(t)) is not None}
    pipeline = next(iter(specs.values()))[1]
    pins = check_pins(params.get("reuse_nodes") or {}, pipeline, cache)
    for task in dag.topological_sort():
        if task.task_id not in specs:
            continue
        node, _, variants = specs[task.task_id]
        if variants is not None and not isinstance(variants, list):
            variants = _spread_variants(ctx, node)
            if variants is None:
                plans.append(
                    NodePlan(task.task_id, node.node, UNKNOWN, waits_on=[node.variants_from.source_task])
                )
                ctx.pending[task.task_id] = "waits"
                continue
        if node.node in pins:
            plan, value = _pinned(task.task_id, node, pins[node.node])
            plans.append(plan)
            ctx.published[task.task_id] = value
            continue
        results = [
            _plan_one(ctx, task.task_id, node, variant, index)
            for index, variant in (enumerate(variants) if variants is not None else [(None, {})])
        ]
        plans += [plan for plan, _ in results]
        values = [value for _, value in results]
        if any(value is None for value in values):
            ctx.pending[task.task_id] = "runs"
        else:
            ctx.published[task.task_id] = values if variants is not None else values[0]
    return plans


def as_json(plans: list[NodePlan]) -> list[dict[str, Any]]:
    return [asdict(p) for p in plans]
