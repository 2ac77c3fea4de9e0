"""How a node task leaves its worker and comes back: waiting in the triggerer for an identical
execution running elsewhere, and starting in the triggerer, which decides reuse
(``decide_in_triggerer``) and hands the task to a worker when the node must run.

A mixin of :class:`~.reusable_docker.ReusableDockerOperator`: it uses the operator's ``log``,
``defer``, ``execute``, ``execution_timeout`` and ``docker_url``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import StartTriggerArgs

from airflow_valohai_reuse.contracts import WaitState
from airflow_valohai_reuse.triggers.execution_done import ExecutionDoneTrigger
from airflow_valohai_reuse.triggers.reuse_decision import (
    DECISION_SECONDS,
    NEXT_METHOD,
    WAIT_SECONDS,
    trigger_path,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_valohai_reuse.reuse.decide import Wait
    from airflow_valohai_reuse.reuse.resolve import Resolved
    from airflow_valohai_reuse.settings import Settings


class NodeHandoffs:
    """The node operator's ways out of its worker and back in."""

    def _wait(self, found: Wait, resolved: Resolved, settings: Settings) -> None:
        self.log.info(
            "an identical execution is running in %s; waiting for it (lease until %s)",
            found.holder.describe(),
            f"{found.holder.expires_at:%H:%M:%S}Z",
        )
        self.defer(
            trigger=ExecutionDoneTrigger(resolved.fingerprint.digest, settings.lease_poll_seconds),
            method_name="resume_after_wait",
        )

    def resume_after_wait(
        self, context: Context, event: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Back from waiting on an identical execution: decide again, now likely a hit."""
        event = event or {}
        if event.get("state") == WaitState.FINISHED:
            self.log.info("the identical execution %s finished; looking it up", event.get("execution"))
        elif event.get("state") == WaitState.FREE:
            self.log.info("the identical execution ended without a result; deciding again")
        else:
            self.log.warning("waiting failed (%s); deciding again", event.get("error"))
        return self.execute(context)

    def decide_in_triggerer(self, facts: dict[str, Any]) -> None:
        """Start this task in the triggerer, which ends it there when the node is reused and hands it
        to a worker (:meth:`execute_after_decision`) otherwise; ``facts``: what the trigger rebuilds
        the node from (triggers/reuse_decision.py)."""
        # Airflow fails a start that outlasts its timeout or the task's execution_timeout: the trigger
        # hands over well before (deciding twice, around a wait for an identical execution)
        bound, wait = DECISION_SECONDS, WAIT_SECONDS
        if self.execution_timeout is not None:
            bound = min(bound, self.execution_timeout.total_seconds() / 4)
            wait = min(wait, self.execution_timeout.total_seconds() / 4)
        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=trigger_path(),
            trigger_kwargs={
                **facts,
                "docker_url": self.docker_url,
                "decision_seconds": bound,
                "wait_seconds": wait,
            },
            next_method=NEXT_METHOD,
            next_kwargs=None,
            timeout=timedelta(seconds=4 * DECISION_SECONDS + 2 * WAIT_SECONDS),
        )

    def execute_after_decision(
        self, context: Context, event: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The triggerer did not reuse the node: decide again here, and run it."""
        self.log.info("decided on a worker: %s", (event or {}).get("why", "the triggerer gave no reason"))
        return self.execute(context)
