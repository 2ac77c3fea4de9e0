"""A node's reuse decision made in the triggerer (``[valohai_reuse] decide_in_triggerer``), so that a
reused node takes no worker.

A node task that starts here is decided as its worker would decide it: the node is rebuilt from its
valohai.yaml, its upstreams are read from the run ledger, the run's pins are checked, its fingerprint
is resolved and :func:`~airflow_valohai_reuse.reuse.decide.decide` answers. A hit or a valid pin
publishes the ledger row and the ``valohai_execution`` XCom and ends the task here; an identical
execution running elsewhere is waited for here (as a worker's :class:`~.execution_done.ExecutionDoneTrigger`
waits), then decided again; anything else (reuse off, a miss, a refused pin, a retry, an upstream the
ledger lacks, a folder, database or Docker daemon this process cannot reach, any error) hands the
task to a worker, which decides again and runs it. Deciding takes no lease and writes only rows that
a repeat writes the same way, so a triggerer that dies mid-decision and is replaced gives the same
result.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_valohai_reuse.cache.failopen import NullCache, open_cache
from airflow_valohai_reuse.contracts import XCOM_KEY, Entry, Kind, Published, TaskKey, Upstream, WaitState
from airflow_valohai_reuse.errors import ManualReuseError, first_line
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
from airflow_valohai_reuse.settings import load_settings
from airflow_valohai_reuse.stores.registry import open_store
from airflow_valohai_reuse.triggers.execution_done import check

#: the operator method a worker runs when the decision is handed over
NEXT_METHOD = "execute_after_decision"
#: how long a decision may take here before the task goes to a worker (Airflow's own bound, the
#: start's timeout, fails the task instead, so it is set longer)
DECISION_SECONDS = 300.0
#: how long a node may wait here for an identical execution before a worker waits on (deferring)
WAIT_SECONDS = 6 * 3600.0


class HandOver(Exception):
    """Why the node goes to a worker, in words."""


@dataclass(frozen=True)
class Reused:
    """A hit or a pin, published to the ledger: the XCom to push and the log line to write."""

    xcom: dict[str, Any]
    line: str


@dataclass(frozen=True)
class Waiting:
    """An identical execution is running elsewhere: wait for it, then decide again."""

    fingerprint: str
    holder: str
    until: str


def trigger_path() -> str:
    return f"{ReuseDecisionTrigger.__module__}.{ReuseDecisionTrigger.__qualname__}"


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


class ReuseDecisionTrigger(BaseTrigger):
    """Starts a node task: ends it reused, or hands it to a worker with a ``TriggerEvent`` saying why.

    ``facts``: the node's valohai.yaml (``path``, ``repository``), the DAG id's ``prefix``, ``dag_id``,
    ``task_id``, ``node`` name, the node's ``docker_url`` (None: the settings' or the default) and
    ``decision_seconds``, how long deciding may take before the task goes to a worker."""

    def __init__(self, **facts: Any) -> None:
        super().__init__()
        self.facts = facts

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return trigger_path(), dict(self.facts)

    @property
    def _bound(self) -> float:
        return float(self.facts.get("decision_seconds") or DECISION_SECONDS)

    async def _decide(self, context: Mapping[str, Any]) -> Reused | Waiting | str:
        return await asyncio.wait_for(
            asyncio.to_thread(decide_here, self.facts, context, self.log), self._bound
        )

    async def _wait(self, waiting: Waiting) -> str | None:
        """Wait, as a worker's ExecutionDoneTrigger waits, for the identical execution to be recorded
        or its lease to end; None when it did, or why a worker waits on instead."""
        self.log.info(
            "an identical execution is running in %s; waiting for it (lease until %s)",
            waiting.holder,
            waiting.until,
        )
        settings = await asyncio.to_thread(load_settings)
        bound = float(self.facts.get("wait_seconds") or WAIT_SECONDS)
        deadline = time.monotonic() + bound
        while True:
            found = await asyncio.to_thread(check, waiting.fingerprint, settings.sql_alchemy_conn)
            if found["state"] is WaitState.FINISHED:
                self.log.info("the identical execution %s finished; looking it up", found["execution"])
                return None
            if found["state"] is WaitState.FREE:
                self.log.info("the identical execution ended without a result; deciding again")
                return None
            if found["state"] is WaitState.ERROR:
                return f"waiting failed ({found['error']})"
            if time.monotonic() + settings.lease_poll_seconds > deadline:
                return f"the identical execution still runs after {bound:g} s here"
            await asyncio.sleep(settings.lease_poll_seconds)

    def _hand_over(self, why: str) -> TriggerEvent:
        self.log.info("handing node %s to a worker: %s", self.facts.get("node"), why)
        return TriggerEvent({"decided_in_triggerer": False, "why": why})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        try:
            if ti is None or not hasattr(ti, "get_template_context"):
                raise HandOver("no task context here (not started from the triggerer)")
            context = await asyncio.to_thread(ti.get_template_context)
            outcome = await self._decide(context)
            while isinstance(outcome, Waiting):
                why = await self._wait(outcome)
                outcome = await self._decide(context) if why is None else why
            if isinstance(outcome, str):
                yield self._hand_over(outcome)
                return
            from airflow.sdk.execution_time.xcom import XCom

            await XCom.aset(
                XCOM_KEY, outcome.xcom, dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=-1
            )
        except HandOver as exc:
            yield self._hand_over(str(exc))
            return
        except TimeoutError:
            yield self._hand_over(f"the decision took longer than {self._bound:g} s")
            return
        except Exception as exc:  # any failure here is the worker's to decide again
            yield self._hand_over(f"{type(exc).__name__}: {first_line(exc)}")
            return
        self.log.info("%s", outcome.line)
        yield TaskSuccessEvent()
