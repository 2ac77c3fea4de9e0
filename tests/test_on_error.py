"""on-error, on-child-error and maximum-queued-executions: what runs, what is skipped or blocked, and
the run's final state after a failing container, as on Valohai."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from valohai_yaml.objs.pipelines.node import ErrorAction
from valohai_yaml.objs.task import TaskOnChildError

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.contracts import STATUS_TASK
from airflow_valohai_reuse.pipeline.failures import NodeRules, Regime, RunRules
from airflow_valohai_reuse.pipeline.runverdict import stop_reason, task_states, verdict

ONERROR = Path(__file__).resolve().parent / "pipelines" / "onerror"


@pytest.fixture(scope="module")
def dags():
    return build_dags(ONERROR / "valohai.yaml", operator_kwargs={"retry_delay": timedelta(seconds=1)})


def _rules(**nodes: NodeRules) -> RunRules:
    return RunRules(nodes, {"d": ("a", "b")}, Regime.CHECKED)


A_CONTINUE = NodeRules("a", "a", ErrorAction.CONTINUE)
B_NEXT = NodeRules("b", "b", ErrorAction.STOP_NEXT)


def test_each_on_error_becomes_airflow_settings(dags):
    assert dags["stop-all"].fail_fast  # parallel branches, all stop-all: Airflow's own fail-fast
    assert not dags["stop-all-checked"].fail_fast and not dags["mixed"].fail_fast
    mixed = dags["mixed"]
    assert mixed.get_task("uses-flaky").trigger_rule == "all_done"  # after a continue node
    assert mixed.get_task("blocked").trigger_rule == "all_success"  # after a stop-next node
    assert mixed.get_task(STATUS_TASK).is_teardown and mixed.get_task(STATUS_TASK).on_failure_fail_dagrun
    assert dags["retry"].get_task("again").retries == 1
    assert STATUS_TASK not in dags["retry"].task_ids  # one node: Airflow's defaults are Valohai's here
    children = dags["children"]
    assert children.get_task("sweep").partial_kwargs["max_active_tis_per_dagrun"] == 2
    assert children.get_task("gather").trigger_rule == "all_done"  # continue-and-complete
    assert children.get_task("gather-error").trigger_rule == "all_success"  # continue-and-error


def test_states_of_variants_are_read_by_map_index():
    rules = RunRules({"t": NodeRules("t", "t", mapped=True), "t_1x": NodeRules("t_1x", "t_1x")})
    raw = {"t_1": "failed", "t_0": "success", "t_10": "success", "t_1x": "running", STATUS_TASK: None}
    assert task_states(rules, raw) == {
        "t": ["success", "failed", "success"],
        "t_1x": ["running"],
        STATUS_TASK: ["None"],
    }


def test_a_task_is_skipped_when_a_stop_all_node_failed_or_a_stopper_stopped_the_run():
    rules = RunRules({"x": NodeRules("x", "x"), "y": NodeRules("y", "y", ErrorAction.STOP_NEXT)})
    assert stop_reason(rules, "y", -1, {"x": ["failed"]}, {}) == (
        "not run: node 'x' failed and its on-error is stop-all: the pipeline stops"
    )
    assert stop_reason(rules, "x", -1, {"y": ["failed"]}, {}) is None  # stop-next stops nothing else
    assert stop_reason(rules, "y", -1, {}, {"x": "stop-pipeline: metadata.drift <= 1"}) == (
        "not run: the pipeline was stopped by x: stop-pipeline: metadata.drift <= 1"
    )


def test_sibling_variants_stop_each_other_unless_the_children_continue():
    stop = RunRules({"t": NodeRules("t", "t", ErrorAction.STOP_NEXT, mapped=True)})
    assert "another variant of task node 't' failed" in stop_reason(
        stop, "t", 2, {"t": ["failed", "success", None]}, {}
    )
    go = RunRules({"t": NodeRules("t", "t", mapped=True, on_child_error=TaskOnChildError.CONTINUE_AND_ERROR)})
    assert stop_reason(go, "t", 2, {"t": ["failed", "success", None]}, {}) is None


def test_a_task_after_a_tolerated_failure_runs_unless_another_upstream_blocks_it():
    rules = _rules(a=A_CONTINUE, b=B_NEXT)
    assert stop_reason(rules, "d", -1, {"a": ["failed"], "b": ["success"]}, {}) is None
    assert stop_reason(rules, "d", -1, {"a": ["success"], "b": ["failed"]}, {}) == (
        "not run: upstream node 'b' failed (on-error stop-next)"
    )
    assert stop_reason(rules, "d", -1, {"a": ["upstream_failed"], "b": ["success"]}, {}) == (
        "not run: upstream node 'a' did not run"
    )


def test_the_run_ends_in_error_exactly_as_valohai_s_pipeline_would():
    rules = _rules(a=A_CONTINUE, b=B_NEXT)
    assert verdict(rules, {"a": ["failed"], "b": ["success"]}, {}) == (
        False,
        ["node 'a' failed; its on-error is continue"],
    )
    assert verdict(rules, {"a": ["success"], "b": ["failed"]}, {})[0] is True
    assert verdict(rules, {}, {"b": "stop-pipeline: metadata.x > 1"})[0] is False
    assert verdict(rules, {}, {"b": "error-pipeline: metadata.x > 1"})[0] is True
    complete = RunRules(
        {"t": NodeRules("t", "t", mapped=True, on_child_error=TaskOnChildError.CONTINUE_AND_COMPLETE)}
    )
    assert verdict(complete, {"t": ["success", "failed"]}, {})[0] is False
    assert verdict(complete, {"t": ["failed", "failed"]}, {})[0] is True


# -- real containers ------------------------------------------------------------------------------


@pytest.fixture
def project(reuse_env):
    from harness import copy_project

    return copy_project(ONERROR, reuse_env / "project")


def _run(project, name, docker_client):
    from harness import run

    dag = build_dags(project / "valohai.yaml", operator_kwargs={"retry_delay": timedelta(seconds=1)})[name]
    return run(dag, docker_client)


@pytest.mark.slow
def test_the_verdicts_need_no_airflow():
    """Which task may start and how a run ends are decided from states alone: importing the verdicts
    loads no Airflow module."""
    code = (
        "import sys; import airflow_valohai_reuse.pipeline.runverdict; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'airflow'], 'airflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_stop_all_fails_the_run_and_skips_the_parallel_branch(project, docker_client):
    done = _run(project, "stop-all", docker_client)
    states = done.task_states
    assert states["bad"] == "failed"
    assert states["side"] == "skipped"  # parallel to bad, still to run when it failed
    assert states["after"] in ("skipped", "upstream_failed")
    assert states["first"] in ("success", "skipped")  # it may have run before bad
    assert (states[STATUS_TASK], done.state) == ("failed", "failed")


@pytest.mark.slow
def test_stop_all_in_a_checked_pipeline_skips_what_starts_after_the_failure(project, docker_client, capfd):
    done = _run(project, "stop-all-checked", docker_client)
    assert done.task_states["bad"] == "failed"
    assert done.task_states["side"] == "skipped"
    assert (done.task_states[STATUS_TASK], done.state) == ("failed", "failed")
    out = capfd.readouterr()
    assert "not run: node 'bad' failed and its on-error is stop-all: the pipeline stops" in out.out + out.err


@pytest.mark.slow
def test_continue_runs_dependents_without_outputs_and_stop_next_blocks_only_its_own(
    project, docker_client, capfd
):
    done = _run(project, "mixed", docker_client)
    assert done.task_states == {
        "flaky": "failed",
        "uses-flaky": "success",
        "blocker": "failed",
        "blocked": "upstream_failed",
        "independent": "success",
        STATUS_TASK: "failed",
    }
    assert done.xcoms["uses-flaky"]["inputs"]["parts"] == []
    assert done.state == "failed"
    out = capfd.readouterr()
    assert "the pipeline ended in error: node 'blocker' failed (on-error stop-next)" in out.out + out.err
    alone = _run(project, "continue", docker_client)
    assert alone.task_states == {"flaky": "failed", "uses-flaky": "success", STATUS_TASK: "success"}
    assert alone.state == "success"


@pytest.mark.slow
def test_retry_runs_the_node_twice_then_fails(project, docker_client):
    done = _run(project, "retry", docker_client)
    assert (done.task_states["again"], done.state) == ("failed", "failed")
    assert done.containers_started == 2


@pytest.mark.slow
def test_child_errors_continue_and_complete_or_continue_and_error(project, docker_client):
    done = _run(project, "children", docker_client)
    assert done.task_states["gather"] == "success"
    gathered = sorted(f["name"] for f in done.xcoms["gather"]["inputs"]["parts"])
    assert gathered == ["a.txt", "c.txt"]  # the successful variants' outputs
    assert done.task_states["gather-error"] == "upstream_failed"
    assert (done.task_states[STATUS_TASK], done.state) == ("failed", "failed")
    assert [x["parameters"]["word"] for x in done.xcoms["sweep-error"]] == ["b"]  # only b published
