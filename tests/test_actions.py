"""Node actions: stop-pipeline and error-pipeline on a metadata condition after a node completes (a
reused node's recorded metadata deciding the same way), and require-approval as an approval task
answered approved or rejected, with real containers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from valohai_yaml.objs.pipelines.node_action import NodeAction

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.contracts import STATUS_TASK
from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.pipeline.actions import Action, Then, When, firing, holds

ACTIONS = Path(__file__).resolve().parent / "pipelines" / "actions"
GATE = Action(frozenset({When.COMPLETE}), ("metadata.drift <= 1",), (Then.STOP,))


def test_conditions_read_metadata_and_parameters_and_a_missing_value_is_false():
    assert holds(GATE, [({"drift": 0.5}, {})]) == (True, "stop-pipeline: metadata.drift <= 1")
    assert holds(GATE, [({"drift": 3}, {})])[0] is False
    ok, why = holds(GATE, [({}, {})])
    assert not ok and "No value ('metadata', 'drift')" in why
    both = Action(
        frozenset({When.STARTING}), ("parameter.mode == 'fast'", "metadata.val-loss < 1"), (Then.ERROR,)
    )
    assert holds(both, [({"val-loss": 0.2}, {"mode": "fast"})])[0] is True
    assert holds(both, [({"val-loss": 0.2}, {"mode": "slow"})])[0] is False
    assert holds(both, [({"val-loss": 9}, {"mode": "fast"}), ({"val-loss": 0.1}, {"mode": "fast"})])[
        0
    ]  # a variant
    assert firing([GATE], When.STARTING, [({"drift": 0}, {})]) == []  # not its when
    assert NodeAction.parse({"when": "node-complete", "then": "noop"}).if_ == []


def test_a_condition_that_is_not_an_expression_names_file_and_node(tmp_path):
    path = tmp_path / "valohai.yaml"
    path.write_text(
        (ACTIONS / "valohai.yaml").read_text().replace("if: metadata.drift <= 1", "if: metadata.drift <=")
    )
    with pytest.raises(PipelineFileError, match=r"at pipeline drift-gate: node 'measure': action condition "):
        build_dags(path)


def test_actions_become_tasks_and_rules():
    dags = build_dags(ACTIONS / "valohai.yaml")
    approve = dags["approve"]
    assert approve.get_task("deploy__approval").upstream_task_ids == {"prepare"}
    assert approve.get_task("deploy").upstream_task_ids == {"prepare", "deploy__approval"}
    assert "require-approval" in approve.doc_md and "asked in every run" in approve.doc_md
    assert dags["drift-gate"].get_task("measure").rules.stoppers == ("measure",)


# -- real containers ------------------------------------------------------------------------------


@pytest.fixture
def project(reuse_env):
    from harness import copy_project

    return copy_project(ACTIONS, reuse_env / "project")


def _dag(project, name):
    return build_dags(project / "valohai.yaml")[name]


@pytest.mark.slow
def test_stop_pipeline_on_metadata_also_when_the_node_is_reused(project, docker_client, capfd):
    from harness import run

    first = run(_dag(project, "drift-gate"), docker_client)
    states = first.task_states
    assert states["measure"] == "success" and first.xcoms["measure"]["metadata"] == {"drift": 0.5}
    assert states["retrain"] == "skipped" and states["side"] == "skipped"
    assert states["first"] in ("success", "skipped")  # it may have started before measure completed
    assert (states[STATUS_TASK], first.state) == ("success", "success")  # stopped, not in error
    out = capfd.readouterr()
    assert (
        "not run: the pipeline was stopped by measure: stop-pipeline: metadata.drift <= 1"
        in out.out + out.err
    )

    again = run(_dag(project, "drift-gate"), docker_client)
    assert again.xcoms["measure"]["reused"] is True  # its recorded metadata decides the same way
    assert again.task_states["retrain"] == "skipped"

    drifting = run(_dag(project, "drift-gate"), docker_client, {"drift": 3.0})
    assert drifting.task_states["retrain"] == "success" and drifting.task_states["side"] == "success"
    assert drifting.state == "success"


@pytest.mark.slow
def test_error_pipeline_fails_the_node_and_the_run_but_keeps_the_execution(project, docker_client):
    from harness import run

    done = run(_dag(project, "drift-error"), docker_client)
    assert done.task_states["measure"] == "failed"
    assert done.xcoms["measure"]["metadata"] == {"drift": 0.5}  # it completed and was published
    assert done.task_states["retrain"] in ("skipped", "upstream_failed")
    assert (done.task_states[STATUS_TASK], done.state) == ("failed", "failed")
    again = run(_dag(project, "drift-error"), docker_client)
    assert again.xcoms["measure"]["reused"] is True and again.state == "failed"


def _respond(dag_id: str, task_id: str, option: str, stop: threading.Event) -> None:
    """What a person does in the Required actions page: the HITL REST endpoint's own code answers."""
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    class Reviewer:
        def get_id(self) -> str:
            return "reviewer"

        def get_name(self) -> str:
            return "reviewer"

    while not stop.is_set():
        with create_session() as session:
            waiting = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.task_id == task_id,
                    TaskInstance.state == "awaiting_input",
                )
            ).first()
            if waiting is not None:
                payload = UpdateHITLDetailPayload(chosen_options=[option])
                update_hitl_detail(dag_id, waiting.run_id, task_id, payload, Reviewer(), session)
                return
        time.sleep(0.5)


def _answered(project, docker_client, option: str):
    from harness import run

    stop = threading.Event()
    reviewer = threading.Thread(
        target=_respond, args=("approve", "deploy__approval", option, stop), daemon=True
    )
    reviewer.start()
    try:
        return run(_dag(project, "approve"), docker_client)
    finally:
        stop.set()
        reviewer.join(timeout=10)


@pytest.mark.slow
def test_require_approval_approved_then_rejected_even_with_the_node_reused(project, docker_client, capfd):
    approved = _answered(project, docker_client, "Approve")
    assert approved.task_states == {
        "prepare": "success",
        "deploy__approval": "success",
        "deploy": "success",
        STATUS_TASK: "success",
    }
    rejected = _answered(project, docker_client, "Reject")
    assert rejected.xcoms["prepare"]["reused"] is True  # the approval is asked all the same
    assert rejected.task_states["deploy__approval"] == "success"
    assert rejected.task_states["deploy"] == "skipped"
    assert (rejected.task_states[STATUS_TASK], rejected.state) == ("success", "success")
    out = capfd.readouterr()
    assert "require-approval: reviewer rejected node 'deploy': the pipeline stops" in out.out + out.err
