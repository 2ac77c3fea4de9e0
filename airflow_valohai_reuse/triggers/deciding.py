"""The reuse decision as the triggerer makes it, blocking: run on a thread of its own
(:class:`~.reuse_decision.ReuseDecisionTrigger`), which also imports this module there, so that
neither the decision nor loading what it needs ever holds up the triggerer's event loop."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

from airflow_valohai_reuse.cache.failopen import NullCache, open_cache
from airflow_valohai_reuse.contracts import Entry, Kind, Published, TaskKey, Upstream
from airflow_valohai_reuse.errors import ManualReuseError
from airflow_valohai_reuse.pipeline.analysis import analyses
from airflow_valohai_reuse.pipeline.options import (
    REUSE_FROM_RUN,
    REUSE_NODES,
    reuse_on,
    unknown_keys,
    unknown_keys_warning,
)
from airflow_valohai_reuse.pipeline.specs import node_spec, pipeline_spec
from airflow_valohai_reuse.reuse.decide import Hit, Miss, Wait, decide, reuse_line
from airflow_valohai_reuse.reuse.image import image_id
from airflow_valohai_reuse.reuse.pins import check_pins
from airflow_valohai_reuse.reuse.resolve import resolve
from airflow_valohai_reuse.reuse.upstream import upstream_tasks
from airflow_valohai_reuse.runtime.inputs import temporary_dir
from airflow_valohai_reuse.settings import Settings, load_settings
from airflow_valohai_reuse.stores.registry import open_store
from airflow_valohai_reuse.triggers.execution_done import check
from airflow_valohai_reuse.triggers.outcomes import HandOver, Reused, Waiting

__all__ = [
    "HandOver",
    "check",
    "current_settings",
    "decide_here",
    "ledger_upstream",
    "pinned_here",
    "refusal",
]


def current_settings() -> Settings:
    return load_settings()


def refusal(try_number: int | None) -> str | None:
    """Why the triggerer leaves a node to a worker before looking at anything: a later try (whose
    worker drops the earlier try's ledger row)."""
    if try_number not in (None, 1):
        return f"try {try_number}: a retry is decided on a worker"
    return None


def publish(
    cache: Any, facts: Mapping[str, Any], context: Mapping[str, Any], published: Published, execution: Any
) -> Reused:
    """A reused or pinned execution's ledger row, written as the worker's publisher writes it."""
    key = TaskKey(facts["dag_id"], context["run_id"], facts["task_id"], -1)
    try_number = getattr(context["ti"], "try_number", None)
    cache.publish(Entry(key, published, try_number, facts.get("pipeline"), saved_s=execution.duration_s))
    return Reused(published.as_xcom(recorded=True), reuse_line(published.kind, execution))


def ledger_upstream(
    tasks: list[str], rows: Mapping[str, list[Published]] | None, mapped: set[str]
) -> dict[str, Upstream]:
    """Each upstream as the run ledger has it; one it lacks (or a task node's) hands over."""
    if any(t in mapped for t in tasks):
        raise HandOver("an upstream is a task node, whose variants the ledger does not count")
    missing = [t for t in tasks if not (rows or {}).get(t)]
    if missing:
        raise HandOver(f"the run ledger has no row for upstream {', '.join(missing)}")
    return {t: Upstream.of(rows[t][0]) for t in tasks}  # type: ignore[index]


def pinned_here(params: Mapping[str, Any], spec: Any, cache: Any, dag_id: str, node: str) -> Any:
    """The execution the run pins ``node`` to, if any; a refused pin hands over (the worker fails the
    node concerned with the refusal's line, and keeps it for the Reuse tab)."""
    if not (params.get(REUSE_NODES) or params.get(REUSE_FROM_RUN)):
        return None
    try:
        pins = check_pins(params.get(REUSE_NODES), spec, cache, params.get(REUSE_FROM_RUN), dag_id=dag_id)
    except ManualReuseError:
        raise HandOver("a pin of the run is refused (its worker says which, and why)") from None
    return pins.get(node)


def _no_pull() -> Any:
    raise HandOver("the step's image is not on the Docker daemon (a worker pulls it)")


def decide_here(facts: Mapping[str, Any], context: Mapping[str, Any], logger: Any) -> Reused | Waiting | str:
    """The worker's decision, blocking (run in a thread): a published hit or pin, an identical
    execution to wait for, or why a worker takes over."""
    params = context["params"]
    ti = context["ti"]
    why = refusal(getattr(ti, "try_number", None))
    if why:
        return why
    found = [a for _, a in analyses(facts["path"], facts["repository"], facts["prefix"], facts["dag_id"])]
    if not found:
        return f"DAG {facts['dag_id']} is no longer in {facts['path']}"
    a = found[0]
    node, spec = node_spec(a, facts["node"]), pipeline_spec(a)
    if node.actions:
        return "the node has actions"
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    unknown = unknown_keys(conf, spec.parameters)
    if unknown:
        logger.warning("%s", unknown_keys_warning(unknown, spec.parameters))
    settings = load_settings()
    cache = open_cache(settings.sql_alchemy_conn, logger)
    if type(cache) is NullCache:  # the fail-open cache is one too, with a database behind it
        return "the execution cache is unavailable here"
    facts = {**facts, "pipeline": node.pipeline}
    pin = pinned_here(params, spec, cache, facts["dag_id"], node.node)
    if pin is not None:
        logger.info("node pinned to execution %s", pin.id)
        return publish(cache, facts, context, Published.of(pin, Kind.PINNED, node.node), pin)
    run_id = context["run_id"]
    mapped = {n.task_id for n in spec.nodes.values() if n.mapped}
    tasks = upstream_tasks(node)
    rows = cache.published(facts["dag_id"], run_id, tasks) if tasks else {}
    upstream = ledger_upstream(tasks, rows, mapped)
    docker_url = facts.get("docker_url") or settings.docker_url
    work = temporary_dir(settings.work_dir, f"{facts['dag_id']}.{facts['task_id']}.decide.")
    try:
        store = open_store(settings.artifact_store, settings.aws_conn_id, cache.blob_digests())
        resolved = resolve(
            node,
            params=params,
            variant={},
            upstream=upstream,
            inputs_dir=work / "inputs",  # as the worker's /valohai tree: made only to fetch
            cache=cache,
            settings=settings,
            image_id=lambda: image_id(docker_url, node.step.image, _no_pull, logger),
            logger=logger,
        )
        answer = decide(
            resolved,
            step=node.step.name,
            reuse=reuse_on(params, spec.reuse_executions),
            cache=cache,
            store=store,
            flight=None,
            logger=logger,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if isinstance(answer, Wait):
        until = f"{answer.holder.expires_at:%H:%M:%S}Z"
        return Waiting(resolved.fingerprint.digest, answer.holder.describe(), until)
    if isinstance(answer, Miss):
        return f"not reused: {answer.reason}"
    assert isinstance(answer, Hit)
    run = resolved.details(settings.secret_env_patterns)
    return publish(
        cache, facts, context, Published.of(answer.execution, Kind.REUSED, node.node, run), answer.execution
    )
