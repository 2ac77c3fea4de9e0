"""A run's failure handling at run time (pipeline/failures.py decides it when the DAG is built).

A node task of a checked DAG asks Airflow (through the task SDK, one call) for the states of the run's
tasks before it does anything, and is skipped when the pipeline has stopped or its upstream blocks
it. The ``valohai_pipeline`` task runs last and fails the run exactly when Valohai's pipeline would
end in error. This module asks and acts; the verdicts themselves are pipeline/runverdict.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_valohai_reuse.contracts import STOP_KEY, map_index_of
from airflow_valohai_reuse.pipeline.failures import RunRules
from airflow_valohai_reuse.pipeline.runverdict import stop_reason, task_states, verdict

if TYPE_CHECKING:
    from airflow.sdk import Context


def _stops(rules: RunRules, context: Context, states: Mapping[str, list[str]]) -> dict[str, str]:
    """Stopper task → why it stopped the pipeline, for the stoppers that are done."""
    stops: dict[str, str] = {}
    ti = context["ti"]
    for task in rules.stoppers:
        if not any(s in ("success", "failed", "skipped") for s in states.get(task, [])):
            continue
        value = ti.xcom_pull(task_ids=task, key=STOP_KEY, map_indexes=None)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, Mapping) and item.get("why"):
                stops[task] = str(item["why"])
    return stops


def run_states(rules: RunRules, context: Context) -> dict[str, list[str]]:
    ti = context["ti"]
    raw = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id])
    return task_states(rules, raw.get(ti.run_id, {}))


def check_start(rules: RunRules, task_id: str, context: Context) -> None:
    """Skip this task (AirflowSkipException) when the run has stopped or its upstream blocks it."""
    from airflow.sdk.exceptions import AirflowSkipException

    states = run_states(rules, context)
    map_index = getattr(context["ti"], "map_index", -1)
    reason = stop_reason(rules, task_id, map_index_of(map_index), states, _stops(rules, context, states))
    if reason is not None:
        raise AirflowSkipException(reason)


class PipelineStatusOperator(BaseOperator):
    """The last task of a fail-fast or checked DAG: ends the run failed exactly when Valohai's pipeline
    would end in error, and says why."""

    ui_color = "#f2e3c6"

    def __init__(self, *, rules: RunRules, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rules = rules

    def execute(self, context: Context) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        states = run_states(self.rules, context)
        failed, reasons = verdict(self.rules, states, _stops(self.rules, context, states))
        for reason in reasons:
            self.log.info("%s", reason)
        if failed:
            raise AirflowFailException("the pipeline ended in error: " + "; ".join(reasons))
        self.log.info("the pipeline completed")
