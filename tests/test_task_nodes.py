"""Task nodes (parameter sweeps): one mapped task instance per variant, each reused on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import copy_project, run
from valohai_yaml.objs.variant_parameter import VariantParameter

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.pipeline.analysis import analyses
from airflow_valohai_reuse.pipeline.variants import VariantError, axis_values, grid, merge_executions

pytestmark = pytest.mark.slow

SWEEP = Path(__file__).resolve().parent / "pipelines" / "sweep"


@pytest.fixture
def project(reuse_env):
    return copy_project(SWEEP, reuse_env / "project")


def _variants(dag, task_id):
    return dag.get_task(task_id).expand_input.value["variant"]


def test_sweep_runs_each_variant_then_reuses_each_on_its_own(project, docker_client):
    dag = build_dags(project / "valohai.yaml")["sweep"]
    first = run(dag, docker_client)
    assert first.state == "success", first.task_states
    assert first.containers_started == 4
    squares = first.xcoms["squares"]
    assert [x["parameters"]["n"] for x in squares] == [1, 2, 3]
    assert len({x["fingerprint"] for x in squares}) == 3
    assert [x["reused"] for x in squares] == [False, False, False]
    assert sorted(o["name"] for o in first.xcoms["total"]["outputs"]) == ["total.txt"]
    assert sorted(f["name"] for f in first.xcoms["total"]["inputs"]["squares"]) == [
        "square-1.txt",
        "square-2.txt",
        "square-3.txt",
    ]

    again = run(dag, docker_client)
    assert again.state == "success"
    assert again.containers_started == 0
    assert [x["reused_from"] for x in again.xcoms["squares"]] == [x["execution_id"] for x in squares]
    assert again.xcoms["total"]["reused"] is True

    yaml_file = project / "valohai.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("items: [1, 2, 3]", "items: [1, 2, 4]"))
    changed = run(build_dags(yaml_file)["sweep"], docker_client)
    assert changed.state == "success"
    assert [x["reused"] for x in changed.xcoms["squares"]] == [True, True, False]
    assert changed.xcoms["squares"][2]["parameters"]["n"] == 4
    assert changed.xcoms["total"]["reused"] is False  # its inputs changed
    assert changed.containers_started == 2


def test_list_default_of_pipeline_parameter_sweeps_on_top_of_the_blueprint(project):
    dag = build_dags(project / "valohai.yaml")["listed"]
    assert _variants(dag, "squares") == [
        {"n": 1, "label": "a"},
        {"n": 1, "label": "b"},
        {"n": 2, "label": "a"},
        {"n": 2, "label": "b"},
        {"n": 3, "label": "a"},
        {"n": 3, "label": "b"},
    ]
    sweep = dict(analyses(project / "valohai.yaml", None, "", None))["listed"].sweeps["squares"]
    assert len(sweep.variants) == 6 and sweep.variants == _variants(dag, "squares")


@pytest.mark.parametrize(
    ("style", "rules", "values"),
    [
        ("multiple", {"items": [3, "x"]}, [3, "x"]),
        ("linear", {"start": 1, "end": 7, "step": 3}, [1, 4, 7]),
        ("linear", {"start": 0.1, "end": 0.3, "step": 0.1}, [0.1, 0.2, 0.3]),
        ("logspace", {"start": -3, "end": -1, "count": 3}, [0.001, 0.01, 0.1]),
        ("logspace", {"start": 1, "end": 3, "count": 3, "base": 2}, [2.0, 4.0, 8.0]),
        ("single", {"value": 5}, [5]),
    ],
)
def test_axis_values(style, rules, values):
    assert axis_values(VariantParameter(name="p", style=style, rules=rules)) == values


def test_grid_is_the_product_in_declaration_order():
    assert grid({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]
    assert grid({}) == [{}]
    assert grid({}, [{"a": 1}, {"a": 2}]) == [{"a": 1}, {"a": 2}]


def test_random_style_is_refused_naming_file_node_and_style(project):
    yaml_file = project / "valohai.yaml"
    yaml_file.write_text(
        yaml_file.read_text().replace(
            "style: multiple\n        rules:\n          items: [1, 2, 3]",
            "style: random\n        rules:\n          min: 1\n          max: 9",
        )
    )
    with pytest.raises(PipelineFileError) as info:
        build_dags(yaml_file)
    message = str(info.value)
    assert str(yaml_file) in message and "'squares'" in message and "'random'" in message


def test_bayesian_task_type_is_refused(project):
    yaml_file = project / "valohai.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("type: grid_search", "type: bayesian_tpe"))
    with pytest.raises(PipelineFileError, match="task type 'bayesian_tpe' is not supported"):
        build_dags(yaml_file)


def test_sweeping_an_undeclared_parameter_is_refused(project):
    yaml_file = project / "valohai.yaml"
    text = yaml_file.read_text()
    yaml_file.write_text(text.replace("      - name: n\n        style", "      - name: m\n        style"))
    with pytest.raises(PipelineFileError, match="sweeps 'm', which is not a parameter of step 'square'"):
        build_dags(yaml_file)


def test_linear_rules_that_never_end_are_refused():
    with pytest.raises(VariantError, match="never reaches"):
        axis_values(VariantParameter(name="p", style="linear", rules={"start": 1, "end": 5, "step": -1}))


def test_merged_variants_pass_outputs_not_per_variant_values():
    def variant(execution_id: str, n: int) -> dict:
        output = {"name": f"{execution_id}.txt", "uri": f"file:///{execution_id}", "size": 1, "checksum": "0"}
        values = {"parameters": {"n": n}, "metadata": {"n": n}}
        return {"execution_id": execution_id, "outputs": [output], **values}

    merged = merge_executions("squares", [variant("a", 1), variant("b", 2)])
    assert [o.name for o in merged.outputs] == ["a.txt", "b.txt"]
    assert merged.execution_ids == ("a", "b")
    assert merged.parameters == {} and merged.metadata == {}
    with pytest.raises(RuntimeError, match="left a variant without its XCom"):
        merge_executions("squares", [{"outputs": []}, None])


def test_pinning_a_task_node_is_refused(project):
    from airflow_valohai_reuse.errors import ManualReuseError
    from airflow_valohai_reuse.reuse.pins import check_pins

    spec = build_dags(project / "valohai.yaml")["sweep"].get_task("total").pipeline
    with pytest.raises(ManualReuseError, match="node 'squares' is a task node"):
        check_pins({"squares": "some-execution"}, spec, cache=None, dag_id="sweep")


def test_list_metadata_spreads_into_variants_each_reused_and_planned(project, docker_client):
    from airflow_valohai_reuse.reuse.plan import HIT, UNKNOWN, plan

    dag = build_dags(project / "valohai.yaml")["spread"]
    assert {p.status for p in plan(project / "valohai.yaml", "spread") if p.task_id != "pick"} == {UNKNOWN}
    first = run(dag, docker_client)
    assert first.state == "success", first.task_states
    assert first.containers_started == 4  # pick, two variants, total
    assert [x["parameters"]["n"] for x in first.xcoms["squares"]] == [4, 5]
    assert sorted(f["name"] for f in first.xcoms["total"]["inputs"]["squares"]) == [
        "square-4.txt",
        "square-5.txt",
    ]

    plans = plan(project / "valohai.yaml", "spread")
    assert [(p.task_id, p.map_index, p.status) for p in plans] == [
        ("pick", None, HIT),
        ("squares", 0, HIT),
        ("squares", 1, HIT),
        ("total", None, HIT),
    ]
    again = run(dag, docker_client)
    assert again.containers_started == 0
    assert [x["reused_from"] for x in again.xcoms["squares"]] == [p.source_execution for p in plans[1:3]]
