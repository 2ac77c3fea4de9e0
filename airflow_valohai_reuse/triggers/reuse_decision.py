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
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_valohai_reuse.contracts import XCOM_KEY, WaitState
from airflow_valohai_reuse.errors import first_line
from airflow_valohai_reuse.triggers.outcomes import HandOver, Reused, Waiting

#: the operator method a worker runs when the decision is handed over
NEXT_METHOD = "execute_after_decision"
#: how long a decision may take here before the task goes to a worker (Airflow's own bound, the
#: start's timeout, fails the task instead, so it is set longer)
DECISION_SECONDS = 300.0
#: how long a node may wait here for an identical execution before a worker waits on (deferring)
WAIT_SECONDS = 6 * 3600.0


def trigger_path() -> str:
    return f"{ReuseDecisionTrigger.__module__}.{ReuseDecisionTrigger.__qualname__}"


def _deciding() -> Any:
    """The decision's module: the triggerer loads this module in its event loop, and it loads the
    decision's (the pipeline parser, the cache, the stores) only here, on a worker thread."""
    from airflow_valohai_reuse.triggers import deciding  # off the event loop: a module graph of its own

    return deciding


def _decide_here(facts: Mapping[str, Any], context: Mapping[str, Any], logger: Any) -> Reused | Waiting | str:
    return _deciding().decide_here(facts, context, logger)


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
            asyncio.to_thread(_decide_here, self.facts, context, self.log), self._bound
        )

    async def _wait(self, waiting: Waiting) -> str | None:
        """Wait, as a worker's ExecutionDoneTrigger waits, for the identical execution to be recorded
        or its lease to end; None when it did, or why a worker waits on instead."""
        self.log.info(
            "an identical execution is running in %s; waiting for it (lease until %s)",
            waiting.holder,
            waiting.until,
        )
        deciding = await asyncio.to_thread(_deciding)
        settings = await asyncio.to_thread(deciding.current_settings)
        bound = float(self.facts.get("wait_seconds") or WAIT_SECONDS)
        deadline = time.monotonic() + bound
        while True:
            found = await asyncio.to_thread(deciding.check, waiting.fingerprint, settings.sql_alchemy_conn)
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
