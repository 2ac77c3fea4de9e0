"""A DAG's failure handling as Airflow settings: retries, trigger rules, a task node's concurrency, and
the ``valohai_pipeline`` task that decides the run's state (pipeline/failures.py decides what)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import DAG, TriggerRule
from valohai_yaml.objs.pipelines.node import ErrorAction

from airflow_valohai_reuse.operators.approval import NodeApprovalOperator
from airflow_valohai_reuse.operators.runcontrol import PipelineStatusOperator
from airflow_valohai_reuse.pipeline.actions import When, approvals
from airflow_valohai_reuse.pipeline.analysis import Analysis
from airflow_valohai_reuse.pipeline.failures import RunRules, approval_task
from airflow_valohai_reuse.pipeline.specs import node_spec


def node_kwargs(rules: RunRules, task_id: str, operator_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What a node task gets from its node's failure handling (``operator_kwargs`` win for retries)."""
    node = rules.nodes[task_id]
    kwargs: dict[str, Any] = {"rules": rules}
    if node.on_error == ErrorAction.RETRY and "retries" not in operator_kwargs:
        kwargs["retries"] = 1
    if rules.runs_after_failure(task_id):
        kwargs["trigger_rule"] = TriggerRule.ALL_DONE
    if node.mapped and node.max_queued:
        kwargs["max_active_tis_per_dagrun"] = int(node.max_queued)
    return kwargs


def add_status_task(dag: DAG, rules: RunRules) -> None:
    """The last task, after every other, deciding the run's state (a teardown, so that a fail-fast DAG
    neither skips it nor lets the run's other last tasks decide)."""
    if rules.status_task is None:
        return
    status = PipelineStatusOperator(
        task_id=rules.status_task, task_display_name="pipeline result", rules=rules, dag=dag, retries=0
    )
    status.as_teardown(on_failure_fail_dagrun=True)
    for task in dag.tasks:
        if task is not status and not task.downstream_list:
            task >> status


def add_approvals(dag: DAG, a: Analysis, rules: RunRules, tasks: Mapping[str, Any]) -> None:
    """A require-approval task before a node (node-starting) or between it and what follows it
    (node-complete)."""
    for name, actions in a.actions.items():
        task_id = a.task_ids[name]
        node = tasks[task_id]
        for when, wanted in sorted(approvals(actions).items(), key=lambda item: item[0].value):
            approval = NodeApprovalOperator(
                task_id=approval_task(task_id, when),
                task_display_name=f"approve {name}" + ("" if when is When.STARTING else " (result)"),
                node=node_spec(a, name),
                node_task=task_id,
                when=when,
                actions=tuple(wanted),
                rules=rules,
                dag=dag,
                retries=0,
                **({"trigger_rule": node.trigger_rule} if when is When.STARTING else {}),
            )
            if when is When.STARTING:
                for upstream in list(node.upstream_list):
                    upstream >> approval
                approval >> node
            else:
                for downstream in list(node.downstream_list):
                    approval >> downstream
                node >> approval
