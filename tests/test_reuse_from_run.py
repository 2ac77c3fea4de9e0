"""reuse_from_run with real containers and real runs: named nodes publish what they had in an earlier
run without running; a refused one fails before any container starts, in one line; the rendered
command; conf keys that change nothing are reported; the plan predicts it all."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import copy_project, run

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.reuse.plan import HIT, MISS, plan

pytestmark = pytest.mark.slow

BASIC = Path(__file__).resolve().parent / "pipelines" / "basic"


@pytest.fixture
def project(reuse_env):
    return copy_project(BASIC, reuse_env / "project")


def _run(project: Path, docker_client, conf: dict | None = None):
    """A run of a DAG built anew: dag.test() in one process writes a run's conf into the Param
    objects of the DAG it ran (workers parse the file for every task and never see that)."""
    return run(build_dags(project / "valohai.yaml")["basic"], docker_client, conf)


@pytest.fixture
def first(project, docker_client):
    result = _run(project, docker_client)
    assert result.state == "success", result.task_states
    return result


def _rendered(run_id: str, task_id: str) -> dict:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rtif
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Rtif).filter_by(dag_id="basic", run_id=run_id, task_id=task_id).one()
        return row.rendered_fields


def test_named_nodes_publish_their_execution_of_that_run_without_running(project, docker_client, first):
    conf = {"reuse_executions": False, "reuse_from_run": {"run_id": first.run_id, "nodes": ["prepare"]}}
    plans = {p.task_id: p for p in plan(project / "valohai.yaml", "basic", conf)}
    assert plans["prepare"].status == HIT and plans["prepare"].reason == "pinned by reuse_from_run"
    assert plans["prepare"].source_execution == first.xcoms["prepare"]["execution_id"]
    assert [plans[t].words() for t in ("fit", "report")] == [
        "fit: runs (reuse off)",
        "report: runs (reuse off)",
    ]

    second = _run(project, docker_client, conf)
    assert second.state == "success", second.task_states
    assert second.containers_started == 2
    assert second.xcoms["prepare"]["kind"] == "pinned"
    assert second.xcoms["prepare"]["execution_id"] == first.xcoms["prepare"]["execution_id"]
    assert {second.xcoms[t]["kind"] for t in ("fit", "report")} == {"ran"}

    # fit ran in the second run: a third run takes that one, and prepare's pin (from the first run)
    third = _run(
        project, docker_client, {"reuse_from_run": {"run_id": second.run_id, "nodes": ["prepare", "fit"]}}
    )
    assert third.state == "success"
    assert third.xcoms["fit"]["execution_id"] == second.xcoms["fit"]["execution_id"]
    assert third.xcoms["prepare"]["execution_id"] == first.xcoms["prepare"]["execution_id"]
    assert third.xcoms["report"]["kind"] == "reused"
    assert third.containers_started == 0


def test_the_rendered_command_is_the_one_that_ran(project, docker_client, first):
    (command,) = _rendered(first.run_id, "fit")["command"]
    assert 'echo "epochs=2 rate=0.1" >> /valohai/outputs/model.bin' in command
    again = _run(project, docker_client, {"epochs": 4})
    assert again.xcoms["prepare"]["kind"] == "reused"
    assert "epochs=4 rate=0.1" in _rendered(again.run_id, "fit")["command"][0]
    # a reused node shows the command its execution ran
    assert "tr a-z A-Z" in _rendered(again.run_id, "prepare")["command"][0]


NOPE = {"run_id": "manual__nope", "nodes": ["fit"]}
NOPE_LINE = "reuse_from_run: no run 'manual__nope' of pipeline 'basic' is in the run ledger"


def _text(capfd) -> str:
    out = capfd.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text and "ManualReuseError" not in text
    return text


def test_a_node_the_pipeline_lacks_is_refused_at_trigger_time(project, docker_client, first):
    from airflow.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="reuse_from_run"):
        _run(project, docker_client, {"reuse_from_run": {"run_id": first.run_id, "nodes": ["ghost"]}})


def test_a_refused_pin_fails_its_own_node_in_one_line_and_no_container_starts(
    project, docker_client, first, capfd
):
    capfd.readouterr()
    again = _run(project, docker_client, {"reuse_from_run": NOPE})
    assert again.state == "failed"
    assert again.containers_started == 0
    # prepare is a hit (no container), so it publishes; fit, whose pin is refused, fails on its own task
    assert [again.task_states[t] for t in ("prepare", "fit", "report")] == [
        "success",
        "failed",
        "upstream_failed",
    ]
    assert again.xcoms["prepare"]["kind"] == "reused"
    text = _text(capfd)
    assert NOPE_LINE in text
    assert "not run: a pin of this run is refused" not in text  # no other task was stopped by it


def test_a_node_that_would_run_stops_before_its_container_when_another_pin_is_refused(
    project, docker_client, first, capfd
):
    capfd.readouterr()
    again = _run(project, docker_client, {"reuse_executions": False, "reuse_from_run": NOPE})
    assert again.state == "failed"
    assert again.containers_started == 0
    assert [again.task_states[t] for t in ("prepare", "fit", "report")] == [
        "failed",
        "upstream_failed",
        "upstream_failed",
    ]
    assert f"not run: a pin of this run is refused: {NOPE_LINE}" in _text(capfd)


def test_unknown_conf_keys_are_reported_in_the_task_log(project, docker_client, first, capfd):
    capfd.readouterr()
    again = _run(project, docker_client, {"reuse_execution": False})
    assert again.state == "success"
    out = capfd.readouterr()
    assert (
        "conf key(s) 'reuse_execution' are neither run options nor pipeline parameters" in out.out + out.err
    )
    assert all(x["kind"] == "reused" for x in again.xcoms.values())


def test_plan_refuses_an_unknown_run_naming_it(project, first):
    from airflow_valohai_reuse.errors import ManualReuseError

    with pytest.raises(ManualReuseError, match="no run 'gone' of pipeline 'basic'"):
        plan(project / "valohai.yaml", "basic", {"reuse_from_run": {"run_id": "gone", "nodes": ["fit"]}})
    plans = plan(project / "valohai.yaml", "basic", {"reuse_executions": False})
    assert [(p.status, p.words()) for p in plans] == [
        (MISS, "prepare: runs (reuse off)"),
        (MISS, "fit: runs (reuse off)"),
        (MISS, "report: runs (reuse off)"),
    ]
