"""``require-approval``: a person approves or rejects in Airflow's Required Actions before a node
starts (``when: node-starting``) or before what follows a node starts (``when: node-complete``).

It is Airflow 3's human-in-the-loop ApprovalOperator (the standard provider), one task beside the
node. A rejection stops the pipeline as ``stop-pipeline`` does: what follows the approval is skipped,
the rest of the run's tasks are skipped when they start, and the run ends without error. The approval
is not part of any fingerprint: it decides whether this run goes on, not what a node computes, so it
is asked in every run, whether the node then runs or is reused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_valohai_reuse.contracts import STOP_KEY, XCOM_KEY
from airflow_valohai_reuse.operators.runcontrol import check_start
from airflow_valohai_reuse.pipeline.actions import Action, When, holds
from airflow_valohai_reuse.pipeline.failures import RunRules
from airflow_valohai_reuse.pipeline.spec import NodeSpec

if TYPE_CHECKING:
    from airflow.sdk import Context


class NodeApprovalOperator(ApprovalOperator):
    """Waits for Approve or Reject on a node; a rejection stops the pipeline."""

    ui_color = "#fce8b2"

    def __init__(
        self,
        *,
        node: NodeSpec,
        node_task: str,
        when: When,
        actions: tuple[Action, ...],
        rules: RunRules | None = None,
        **kwargs: Any,
    ) -> None:
        what = "start" if when is When.STARTING else "go on after"
        conditions = "; ".join(a.describe() for a in actions)
        super().__init__(
            subject=f"Approve: {what} node {node.node!r} of pipeline {node.pipeline!r}?",
            body=f"valohai.yaml action of node `{node.node}`: {conditions}. Reject stops the pipeline.",
            ignore_downstream_trigger_rules=True,
            **kwargs,
        )
        self.node, self.node_task, self.when, self.actions, self.rules = node, node_task, when, actions, rules

    def _candidates(self, context: Context) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
        """What the conditions read: the node's published result(s) after it completed; before it
        starts, its step's defaults with the run's pipeline parameters aimed at it."""
        if self.when is When.COMPLETE:
            value = context["ti"].xcom_pull(task_ids=self.node_task, key=XCOM_KEY, map_indexes=None)
            results = value if isinstance(value, list) else [value]
            return [
                (r.get("metadata", {}), r.get("parameters", {})) for r in results if isinstance(r, Mapping)
            ]
        parameters = {name: p.default for name, p in self.node.step.parameters.items()}
        params = context["params"]
        for pipeline_param, targets in self.node.pipeline_parameters.items():
            value = params.get(pipeline_param)
            value = self.node.pipeline_defaults.get(pipeline_param) if value is None else value
            if value is not None:
                parameters.update(dict.fromkeys(targets, value))
        return [({}, parameters)]

    def execute(self, context: Context) -> Any:
        if self.rules is not None and self.rules.check_start:
            check_start(self.rules, self.node_task if self.when is When.STARTING else self.task_id, context)
        candidates = self._candidates(context)
        verdicts = [holds(a, candidates) for a in self.actions]
        if not any(ok for ok, _ in verdicts):
            self.log.info("no approval needed: %s", "; ".join(why for _, why in verdicts))
            return None
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        chosen = event.get("chosen_options") or []
        if "error" not in event and self.REJECT in chosen:
            user = (event.get("responded_by_user") or {}).get("name", "someone")
            why = f"require-approval: {user} rejected node {self.node.node!r}"
            context["ti"].xcom_push(
                key=STOP_KEY, value={"then": "stop-pipeline", "why": why, "node": self.node.node}
            )
            self.log.info("%s: the pipeline stops", why)
        return super().execute_complete(context, event)
