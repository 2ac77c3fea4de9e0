"""decide_in_triggerer's pure parts: which node tasks start in the triggerer, what they carry there, and
what the trigger refuses to decide (a pin, a retry, an upstream the run ledger lacks)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from airflow_valohai_reuse.contracts import Kind, Published
from airflow_valohai_reuse.factory.factory import build_dags
from airflow_valohai_reuse.reuse.decide import reuse_line
from airflow_valohai_reuse.triggers.deciding import HandOver, ledger_upstream, pinned_here, refusal
from airflow_valohai_reuse.triggers.reuse_decision import NEXT_METHOD, ReuseDecisionTrigger, trigger_path

PIPELINES = Path(__file__).resolve().parent / "pipelines"


def _published(task: str) -> Published:
    return Published(f"exec-{task}", Kind.RAN, "fp", [], {"p": 1}, {}, {}, {"loss": 0.5}, "step", task)


def _started_in_triggerer(dag) -> dict[str, bool]:
    return {t.task_id: bool(getattr(t, "start_from_trigger", False)) for t in dag.tasks}


def test_off_by_default_no_node_starts_in_the_triggerer():
    dag = build_dags(PIPELINES / "basic" / "valohai.yaml")["basic"]
    assert not any(_started_in_triggerer(dag).values())


def test_build_dags_decides_per_file_over_the_setting(monkeypatch):
    path = PIPELINES / "basic" / "valohai.yaml"
    on = build_dags(path, decide_in_triggerer=True)["basic"]
    assert _started_in_triggerer(on) == {"prepare": True, "fit": True, "report": True}
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__DECIDE_IN_TRIGGERER", "True")
    off = build_dags(path, decide_in_triggerer=False)["basic"]
    assert not any(_started_in_triggerer(off).values())


def test_on_plain_nodes_start_in_the_triggerer_with_json_facts(monkeypatch):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__DECIDE_IN_TRIGGERER", "True")
    path = PIPELINES / "basic" / "valohai.yaml"
    dag = build_dags(path, dag_id_prefix="vh_")["vh_basic"]
    assert _started_in_triggerer(dag) == {"prepare": True, "fit": True, "report": True}
    args = dag.get_task("fit").start_trigger_args
    assert args.trigger_cls == trigger_path()
    assert args.next_method == NEXT_METHOD and args.next_kwargs is None
    assert args.timeout is not None and args.timeout.total_seconds() > 0
    facts = args.trigger_kwargs
    json.dumps(facts)  # stored in the serialized DAG and the trigger row
    assert facts | {"docker_url": None} == {
        "decision_seconds": 300.0,
        "wait_seconds": 6 * 3600.0,
        "path": str(path.resolve()),
        "repository": str(path.parent.resolve()),
        "prefix": "vh_",
        "dag_id": "vh_basic",
        "task_id": "fit",
        "node": "fit",
        "docker_url": None,
    }
    trigger = ReuseDecisionTrigger(**facts)
    assert trigger.serialize() == (trigger_path(), facts)


def test_on_task_nodes_and_nodes_with_actions_keep_the_worker_path(monkeypatch):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__DECIDE_IN_TRIGGERER", "True")
    sweep = build_dags(PIPELINES / "sweep" / "valohai.yaml")["sweep"]
    mapped = {t.task_id for t in sweep.tasks if type(t).__name__ == "MappedOperator"}
    assert mapped and not any(_started_in_triggerer(sweep)[t] for t in mapped)
    assert _started_in_triggerer(sweep)["total"]  # a plain node of the same DAG does
    seen = 0
    for dag in build_dags(PIPELINES / "actions" / "valohai.yaml").values():
        started = _started_in_triggerer(dag)
        with_actions = {t.task_id for t in dag.tasks if getattr(getattr(t, "node", None), "actions", None)}
        seen += len(with_actions)
        assert not any(started[t] for t in with_actions), (dag.dag_id, started)
    assert seen


def test_retries_are_left_to_a_worker():
    assert refusal(1) is None and refusal(None) is None
    assert "try 2" in refusal(2)


def test_a_valid_pin_is_found_here_and_a_refused_one_hands_over(tmp_path):
    from airflow_valohai_reuse.cache.executions import ExecutionCache
    from airflow_valohai_reuse.cache.failopen import FailOpenCache
    from airflow_valohai_reuse.contracts import Execution, Output
    from airflow_valohai_reuse.pipeline.analysis import analyses
    from airflow_valohai_reuse.pipeline.specs import pipeline_spec

    cache = FailOpenCache(ExecutionCache(f"sqlite:///{tmp_path / 'cache.db'}"))
    data = [Output("data/train.csv", "file:///store/x", 1, "a" * 64)]  # what fit's edge takes
    pinned = Execution("e" * 32, "f" * 64, 3, "prepare", {}, data, pipeline="basic", node="prepare")
    cache.record(pinned)
    ((_, analysis),) = analyses(PIPELINES / "basic" / "valohai.yaml", PIPELINES / "basic", "", "basic")
    spec = pipeline_spec(analysis)
    assert pinned_here({}, spec, cache, "basic", "prepare") is None  # nothing pinned: not looked at
    pins = {"reuse_nodes": {"prepare": pinned.id}}
    assert pinned_here(pins, spec, cache, "basic", "prepare").id == pinned.id
    assert pinned_here(pins, spec, cache, "basic", "fit") is None  # another node: decided as usual
    with pytest.raises(HandOver, match="pin of the run is refused"):
        pinned_here({"reuse_nodes": {"prepare": "0" * 32}}, spec, cache, "basic", "fit")


def test_upstreams_come_from_the_run_ledger_only():
    rows = {"prepare": [_published("prepare")]}
    found = ledger_upstream(["prepare"], rows, set())
    assert found["prepare"].metadata == {"loss": 0.5} and found["prepare"].parameters == {"p": 1}
    assert ledger_upstream([], None, set()) == {}
    with pytest.raises(HandOver, match="no row for upstream fit"):
        ledger_upstream(["prepare", "fit"], rows, set())
    with pytest.raises(HandOver, match="no row"):
        ledger_upstream(["prepare"], None, set())  # the ledger could not be read
    with pytest.raises(HandOver, match="task node"):
        ledger_upstream(["prepare"], rows, {"prepare"})


def test_the_reused_line_is_the_workers():
    execution = SimpleNamespace(id="e1", dag_id="d", run_id="r", task_id="t", duration_s=1.5)
    assert reuse_line(Kind.REUSED, execution) == "REUSED execution e1 from d/r/t (time saved: 1.5 s)"
    execution.duration_s = None
    assert reuse_line(Kind.REUSED, execution).endswith("(time saved: unknown)")


def test_a_step_time_limit_bounds_the_decision_well_inside_it(monkeypatch):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__DECIDE_IN_TRIGGERER", "True")
    dag = build_dags(PIPELINES / "misc" / "valohai.yaml")["too-slow"]
    args = dag.get_task("slow").start_trigger_args  # time-limit: 3s
    assert args.trigger_kwargs["decision_seconds"] == 0.75  # twice around a wait, inside the limit
    assert args.trigger_kwargs["wait_seconds"] == 0.75


def _events(trigger: ReuseDecisionTrigger) -> list:
    async def collect() -> list:
        return [event async for event in trigger.run()]

    return asyncio.run(collect())


def _trigger(tmp_path: Path, params: dict, path: Path | None = None) -> ReuseDecisionTrigger:
    facts = {"path": str(path or tmp_path / "gone" / "valohai.yaml"), "repository": str(tmp_path)}
    trigger = ReuseDecisionTrigger(**facts, prefix="", dag_id="basic", task_id="fit", node="fit")
    context = {"params": params, "ti": SimpleNamespace(try_number=1), "run_id": "manual__1"}
    trigger.task_instance = SimpleNamespace(
        task_id="fit", dag_id="basic", run_id="manual__1", get_template_context=lambda: context
    )
    return trigger


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({}, "cannot be read"),  # a triggerer that cannot see the valohai.yaml
    ],
)
def test_what_the_triggerer_cannot_decide_goes_to_a_worker_with_the_reason(tmp_path, params, why):
    (event,) = _events(_trigger(tmp_path, params))
    assert isinstance(event, TriggerEvent) and not isinstance(event, TaskSuccessEvent)
    assert event.payload["decided_in_triggerer"] is False and why in event.payload["why"], event.payload


def test_a_trigger_without_the_task_context_hands_over():
    (event,) = _events(
        ReuseDecisionTrigger(path="x", repository="x", prefix="", dag_id="d", task_id="t", node="t")
    )
    assert "no task context" in event.payload["why"]


def test_a_triggerer_that_cannot_reach_the_docker_daemon_hands_over(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'cache.db'}")
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__WORK_DIR", str(tmp_path / "work"))
    trigger = _trigger(tmp_path, {}, PIPELINES / "basic" / "valohai.yaml")
    trigger.facts |= {"repository": str(PIPELINES / "basic"), "task_id": "prepare", "node": "prepare"}
    trigger.facts["docker_url"] = "tcp://127.0.0.1:9"  # nothing listens there
    (event,) = _events(trigger)
    assert event.payload["decided_in_triggerer"] is False, event.payload
    assert "ConnectionError" in event.payload["why"] or "Connection refused" in event.payload["why"], event
    assert list((tmp_path / "work").iterdir()) == []  # the decision's scratch folder is gone
