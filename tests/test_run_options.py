"""Run options without Docker: the trigger's JSON Schemas, reuse_from_run through a real run ledger
(SQLite), what a plan refuses and warns about, the DAG's documentation, ``stats`` and ``ls``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from corpus import incoming

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.contracts import STATUS_TASK, Entry, Execution, Kind, Output, Published, TaskKey
from airflow_valohai_reuse.errors import ManualReuseError, ValohaiReuseError
from airflow_valohai_reuse.pipeline.analysis import analyses
from airflow_valohai_reuse.pipeline.describe import pipeline_doc, yaml_part
from airflow_valohai_reuse.pipeline.options import unknown_keys
from airflow_valohai_reuse.pipeline.specs import pipeline_spec
from airflow_valohai_reuse.reuse.pins import check_pins

ROOT = Path(__file__).resolve().parent.parent
BASIC = Path(__file__).resolve().parent / "pipelines" / "basic" / "valohai.yaml"
SWEEP = Path(__file__).resolve().parent / "pipelines" / "sweep" / "valohai.yaml"
NIGHTLY = ROOT / "examples" / "nightly" / "valohai.yaml"


def _analysis(path: Path, name: str):
    return dict(analyses(path, None, "", None))[name]


def _server_params(dag):
    """The DAG's Params as the API server holds them: what a REST trigger's conf is checked against."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag)).params


@pytest.mark.parametrize(
    ("conf", "refused"),
    [
        ({}, None),
        ({"reuse_executions": None, "reuse_nodes": None, "reuse_from_run": None}, None),
        ({"reuse_from_run": {"run_id": "manual__1", "nodes": ["prepare", "fit"]}}, None),
        ({"reuse_nodes": {"fit": "abc"}, "epochs": 3, "not_an_option": 1}, None),
        ({"reuse_executions": "maybe"}, "reuse_executions"),
        ({"reuse_nodes": {"nope": "abc"}}, "reuse_nodes"),
        ({"reuse_nodes": {"fit": ""}}, "reuse_nodes"),
        ({"reuse_from_run": {"run_id": "manual__1", "nodes": ["nope"]}}, "reuse_from_run"),
        ({"reuse_from_run": {"run_id": "manual__1"}}, "reuse_from_run"),
        ({"reuse_from_run": {"nodes": ["fit"], "run": "x"}}, "reuse_from_run"),
        ({"epochs": "three"}, "epochs"),
    ],
)
def test_trigger_refuses_what_a_schema_can_say(conf, refused):
    from airflow.exceptions import ParamValidationError

    params = _server_params(build_dags(BASIC)["basic"])
    if refused is None:
        params.deep_merge(conf).validate()
        return
    with pytest.raises(ParamValidationError, match=f"Invalid input for param {refused}"):
        params.deep_merge(conf).validate()


def test_params_explain_themselves_and_none_is_required():
    params = _server_params(build_dags(BASIC)["basic"])
    for name in ("reuse_executions", "reuse_nodes", "reuse_from_run", "epochs"):
        param = params.get_param(name)
        assert param.schema["title"] and param.description, name
        # the trigger form marks a field required when its type lacks "null"
        assert "null" in param.schema["type"], name
    assert params.get_param("reuse_nodes").schema["propertyNames"]["enum"] == ["fit", "prepare", "report"]
    assert params["reuse_executions"] is True and params["reuse_from_run"] == {}


def test_unknown_conf_keys_are_named():
    assert unknown_keys({"reuse_execution": False, "epochs": 3, "reuse_nodes": {}}, ["epochs"]) == [
        "reuse_execution"
    ]


def _execution(eid: str, step: str, outputs: tuple[str, ...] = (), duration: float = 10.0) -> Execution:
    return Execution(
        id=eid,
        fingerprint=eid.ljust(64, "0")[:64],
        fingerprint_version=1,
        step=step,
        components={},
        outputs=[Output(name, f"file:///{name}", 1, "0" * 64) for name in outputs],
        pipeline="basic",
        node=step,
        dag_id="basic",
        run_id="first",
        task_id=step,
        finished_at=datetime.now(UTC),
        duration_s=duration,
    )


def _entry(run_id: str, execution: Execution, kind: Kind, saved: float | None = None, **key) -> Entry:
    node = key.get("node", execution.step)
    published = Published.of(execution, kind, node)
    task = TaskKey("basic", run_id, node, key.get("map_index", -1))
    return Entry(task, published, 1, key.get("pipeline", "basic"), saved_s=saved)


@pytest.fixture
def ledger_cache(tmp_path):
    """A cache where run ``first`` ran prepare and fit (report failed), and run ``second`` reused
    prepare and ran fit again."""
    cache = ExecutionCache(f"sqlite:///{tmp_path / 'cache.db'}")
    prepare = _execution("prep-1", "prepare", ("data/clean.txt",), 4.0)
    fit = _execution("fit-1", "fit", ("model.bin",), 6.0)
    fit2 = _execution("fit-2", "fit", ("model.bin",), 5.0)
    cache.record(prepare, _entry("first", prepare, Kind.RAN))
    cache.record(fit, _entry("first", fit, Kind.RAN))
    cache.publish(_entry("second", prepare, Kind.REUSED, 4.0))
    cache.record(fit2, _entry("second", fit2, Kind.RAN))
    return cache


def test_reuse_from_run_pins_what_each_node_published_there(ledger_cache):
    spec = pipeline_spec(_analysis(BASIC, "basic"))
    pins = check_pins(
        {}, spec, ledger_cache, {"run_id": "second", "nodes": ["prepare", "fit"]}, dag_id="basic"
    )
    assert {node: e.id for node, e in pins.items()} == {"prepare": "prep-1", "fit": "fit-2"}
    # reuse_nodes and reuse_from_run together, agreeing on a node
    both = check_pins(
        {"fit": "fit-2"}, spec, ledger_cache, {"run_id": "second", "nodes": ["fit"]}, dag_id="basic"
    )
    assert both["fit"].id == "fit-2"


@pytest.mark.parametrize(
    ("pins", "from_run", "node", "message"),
    [
        (
            {},
            {"run_id": "nope", "nodes": ["fit"]},
            "fit",
            "no run 'nope' of pipeline 'basic' is in the run ledger",
        ),
        (
            {},
            {"run_id": "first", "nodes": ["report"]},
            "report",
            "node 'report' has no execution in run 'first': it failed or did not run there",
        ),
        ({}, {"run_id": "first", "nodes": ["ghost"]}, "ghost", "node 'ghost' is not in pipeline 'basic'"),
        ({"fit": "fit-1"}, {"run_id": "second", "nodes": ["fit"]}, "fit", "pinned to execution fit-1"),
        (
            {"fit": "prep-1"},
            None,
            "fit",
            "node 'fit' runs step 'fit' but execution prep-1 is of step 'prepare'",
        ),
        ({}, {"run_id": "first"}, "", "reuse_from_run must be"),
    ],
)
def test_refused_pins_name_the_node_and_why(ledger_cache, pins, from_run, node, message):
    spec = pipeline_spec(_analysis(BASIC, "basic"))
    with pytest.raises(ManualReuseError) as refused:
        check_pins(pins, spec, ledger_cache, from_run, dag_id="basic")
    assert message in refused.value.problems[node]
    assert refused.value.concerning(node) == refused.value.problems[node]
    assert refused.value.concerning("other").startswith("not run: a pin of this run is refused: ")


def test_invalidated_execution_of_an_earlier_run_is_refused(ledger_cache):
    ledger_cache.invalidate(["prep-1"], by="test", reason="bad data")
    spec = pipeline_spec(_analysis(BASIC, "basic"))
    with pytest.raises(ManualReuseError, match="invalidated, expired or never recorded"):
        check_pins({}, spec, ledger_cache, {"run_id": "first", "nodes": ["prepare"]}, dag_id="basic")


def test_task_nodes_cannot_be_reused_from_a_run(ledger_cache):
    spec = pipeline_spec(_analysis(SWEEP, "sweep"))
    with pytest.raises(ManualReuseError, match="is a task node"):
        check_pins({}, spec, ledger_cache, {"run_id": "first", "nodes": ["squares"]}, dag_id="basic")


def test_stats_sum_the_ledger_by_pipeline_and_step(ledger_cache, tmp_path, monkeypatch, capsys):
    from airflow_valohai_reuse import cli

    found = ledger_cache.stats()
    assert found["pipelines"] == [
        {
            "pipeline": "basic",
            "executions_run": 3,
            "executions_reused": 1,
            "reuse_rate": 0.25,
            "saved_seconds": 4.0,
        }
    ]
    steps = {row["step"]: row for row in found["steps"]}
    assert steps["prepare"]["executions_reused"] == 1 and steps["prepare"]["reuse_rate"] == 0.5
    assert steps["fit"] == {
        "step": "fit",
        "executions_run": 2,
        "executions_reused": 0,
        "reuse_rate": 0.0,
        "saved_seconds": 0.0,
    }
    assert ledger_cache.stats(pipeline="other") == {"pipelines": [], "steps": []}
    future = datetime.now(UTC) + timedelta(hours=1)
    assert ledger_cache.stats(since=future)["pipelines"] == []

    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN", ledger_cache.url)
    assert cli.main(["stats", "--since", "7d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == found
    assert cli.main(["stats", "--pipeline", "basic"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["PIPELINE", "RUN", "REUSED", "RATE", "SAVED", "(s)"]
    assert out[1].split() == ["basic", "3", "1", "25%", "4.0"]
    assert cli.main(["stats", "--since", "soon"]) == 2


def test_ls_prints_a_header_and_each_entry_s_run_and_reuse_count(ledger_cache, monkeypatch, capsys):
    from airflow_valohai_reuse import cli

    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN", ledger_cache.url)
    assert cli.main(["ls", "--step", "prepare"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["EXECUTION", "STEP", "FINISHED", "OUTPUTS", "REUSED", "RUN"]
    assert row.startswith("prep-1") and row.split()[-2:] == ["1", "basic/first"]
    assert cli.main(["ls", "--json"]) == 0
    rows = {r["execution_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["prep-1"]["reused"] == 1 and rows["fit-1"]["reused"] == 0


def test_plan_refuses_what_the_trigger_refuses(tmp_path, monkeypatch):
    from airflow_valohai_reuse.reuse.plan import _params

    a = _analysis(BASIC, "basic")
    with pytest.raises(ValohaiReuseError, match="Invalid input for param reuse_nodes"):
        _params(a, {"reuse_nodes": {"nope": "x"}})
    assert _params(a, {"reuse_executions": None})["reuse_nodes"] == {}


def test_dag_doc_shows_the_pipeline_as_written():
    dag = build_dags(NIGHTLY)["nightly-training"]
    # what the documentation's node table and edge list show: node preprocess runs its step, an edge
    # gives train its input
    assert dag.get_task("preprocess").node.step.name == "preprocess"
    assert ("inputs", "preprocess", "output", "clean.csv", "dataset") in incoming(dag.get_task("train"))
    # failure handling: a failing node blocks the nodes after it and fails the run
    assert not dag.fail_fast and STATUS_TASK not in dag.task_ids
    assert {t.trigger_rule for t in dag.tasks} == {"all_success"}
    part = dag.doc_md.split("```yaml\n", 1)[1].split("\n```", 1)[0]
    text = NIGHTLY.read_text()
    assert part == text.rstrip()  # this file is exactly one pipeline and its steps
    assert "# Example pipeline" in part


def test_dag_doc_cuts_out_only_the_pipeline_s_part(tmp_path):
    a = _analysis(BASIC, "failing")
    part = yaml_part(a)
    assert "name: broken" in part and "name: failing" in part
    assert "name: prepare" not in part and "name: basic" not in part
    # a flow-style file, which the line scan cannot split, is cut out by PyYAML's marks
    flow = tmp_path / "valohai.yaml"
    flow.write_text(
        "- step: {name: a, image: x, command: [ls]}\n- step: {name: b, image: x, command: [ls]}\n"
        "- pipeline: {name: p, nodes: [{name: n, type: execution, step: a}], edges: []}\n"
    )
    part = yaml_part(_analysis(flow, "p"))
    assert part.splitlines() == [
        "- step: {name: a, image: x, command: [ls]}",
        "- pipeline: {name: p, nodes: [{name: n, type: execution, step: a}], edges: []}",
    ]


def test_dag_doc_says_what_differs_from_valohai():
    path = ROOT / "tests" / "pipelines" / "corpus" / "06_deployment.yaml"
    doc = pipeline_doc(_analysis(path, "train_and_deploy"), ())
    assert "deployment node 'deploy' left out" in doc
    assert "'Train classifier' → `Train_classifier`" in doc
    assert "(left out)" in doc
