"""The project's own corpus file by file: what each feature becomes in the DAG (task ids, edges,
parameters, overrides, variants, deployment nodes left out) and what the DAG's documentation says."""

from __future__ import annotations

from corpus import OWN, incoming, own, spec

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.contracts import STATUS_TASK
from airflow_valohai_reuse.pipeline.analysis import analyses


def test_both_edge_forms_globs_and_every_edge_kind():
    dags = own("01_fan-in.yaml")
    dag = dags["solar_readings"]
    assert dag.params["reuse_executions"] is True
    assert dag.get_task("fetch_north").task_display_name == "fetch north"
    merge, report = dag.get_task("merge"), dag.get_task("report")
    assert merge.upstream_task_ids == {"fetch_north", "fetch_south"}
    assert incoming(merge) == {
        ("inputs", "fetch north", "output", "*.csv", "parts"),
        ("inputs", "fetch south", "output", "hourly/*.csv", "parts"),
        ("environment", "fetch north", "environment-variable", "READINGS_API", "READINGS_API"),
    }
    assert report.upstream_task_ids == {"merge"}
    assert incoming(report) == {
        ("inputs", "merge", "input", "parts", "sources"),
        ("inputs", "merge", "input", "calendar", "calendar"),
    }
    globs = {n: p.output_globs for n, p in merge.pipeline.nodes.items()}
    assert globs == {"fetch north": ("*.csv",), "fetch south": ("hourly/*.csv",), "merge": (), "report": ()}
    assert dag.get_task("fetch_south").node.step.parameters["site"].default == "south"
    assert dag.get_task("fetch_north").node.step.parameters["site"].default == "north"
    single = dags["one_site"]
    assert single.params["reuse_executions"] is False
    assert incoming(single.get_task("merge")) == {("inputs", "fetch", "output", "readings-*", "parts")}


def test_pipeline_parameters_reach_their_targets_and_parameters_chain():
    dags = own("02_parameters.yaml")
    dag = dags["forecast_with_parameters"]
    schema = {name: (p.value, p.schema.get("type")) for name, p in dag.params.items()}
    assert schema["horizon"] == (48, ["integer", "null"])
    assert schema["learning-rate"] == (0.05, ["number", "null"])
    assert schema["shuffle"] == (True, ["boolean", "null"])
    assert schema["features"] == (["irradiance", "cloud-cover", "temperature"], ["array", "null"])
    assert dag.get_task("fit").node.pipeline_parameters == {
        "horizon": ("horizon",),
        "learning-rate": ("learning-rate",),
        "shuffle": ("shuffle",),
        "features": ("features",),
    }
    assert dag.get_task("backtest").node.pipeline_parameters == {"horizon": ("horizon",)}
    assert dag.get_task("explain").node.pipeline_parameters == {}
    assert incoming(dag.get_task("backtest")) == {
        ("inputs", "fit", "output", "model.pkl", "model"),
        ("parameters", "fit", "parameter", "model-kind", "model-kind"),
    }
    assert dag.get_task("explain").upstream_task_ids == {"backtest"}
    assert incoming(dag.get_task("explain")) == {
        ("parameters", "backtest", "parameter", "model-kind", "model-kind")
    }
    short = dags["forecast__string_target"]
    assert short.dag_display_name == "forecast, string target"
    assert short.get_task("fit").node.pipeline_parameters == {"kind": ("model-kind",)}
    assert short.params["kind"] == "linear"


def test_overrides_replace_only_what_they_state_and_edge_merge_modes():
    dag = own("03_overrides.yaml")["cleaning_variants"]
    plain, small = dag.get_task("plain").node.step, dag.get_task("small").node.step
    assert (plain.image, plain.command) == (
        "python:3.12-slim",
        ["python clean.py --size {parameter-value:size}"],
    )
    assert (small.image, small.command) == (
        "python:3.11-slim",
        ["python clean.py --fast --size {parameter-value:size}"],
    )
    assert (plain.parameters["size"].default, small.parameters["size"].default) == (256, 64)
    assert small.parameters["size"].type == "integer"
    assert small.parameters["mode"].default == "rgb"
    assert plain.inputs["raw"].default == "data/raw/*.png"
    assert small.inputs["raw"].default == ["data/raw/first.png", "data/raw/second.png"]
    assert small.inputs["masks"].default == "data/masks.zip"
    appends = {t.task_id: t.node.append_edges_to_defaults for t in dag.tasks if t.task_id != STATUS_TASK}
    assert appends == {
        "plain": False,
        "small": False,
        "instead-of-defaults": False,
        "on-top-of-defaults": True,
    }
    assert dag.get_task("instead-of-defaults").upstream_task_ids == {"plain"}
    assert dag.get_task("on-top-of-defaults").upstream_task_ids == {"small"}


def test_task_blueprints_become_one_mapped_instance_per_variant():
    dags = own("04_sweeps.yaml")
    dag = dags["forecaster_sweep"]
    assert dag.get_task("grid").expand_input.value["variant"] == [
        {"depth": depth, "learning-rate": rate, "l2": l2, "seed": 7}
        for depth in (3, 5)
        for rate in (0.05, 0.1, 0.15)
        for l2 in (0.0001, 0.001, 0.01)
    ]
    assert dag.get_task("manual").expand_input.value["variant"] == [
        {"depth": 2, "loss": "huber"},
        {"depth": 8, "loss": "squared"},
    ]
    choose = dag.get_task("choose")
    assert choose.upstream_task_ids == {"grid", "manual"}
    assert incoming(choose) == {
        ("inputs", "grid", "output", "model-*", "models"),
        ("inputs", "manual", "output", "model-*", "models"),
    }
    assert choose.pipeline.nodes["grid"].mapped and not choose.pipeline.nodes["choose"].mapped
    assert len(dag.get_task("grid").expand_input.value["variant"]) == 18
    tuned = dags["losses_by_pipeline_parameter"].get_task("tuned").expand_input.value["variant"]
    assert tuned == [{"estimators": n, "loss": loss} for n in (4, 16, 64) for loss in ("squared", "huber")]
    assert all(type(v["estimators"]) is int for v in tuned)


def test_list_metadata_spreads_into_one_variant_per_item():
    dags = own("05_spread.yaml")
    dag = dags["score_every_region"]
    task, helper = dag.get_task("score"), dag.get_task("score__variants")
    assert helper.upstream_task_ids == {"regions"}
    assert task.upstream_task_ids == {"regions", "score__variants"}
    assert incoming(task) == {("variants", "regions", "metadata", "regions", "region")}
    assert dag.get_task("summary").upstream_task_ids == {"score"}
    # no fixed variants: one per item of regions's metadata 'regions', as parameter 'region'
    spread = dict(analyses(OWN / "05_spread.yaml", None, "", None))["score_every_region"].sweeps["score"]
    assert spread.variants == [] and spread.spread_from == spec(task).variants_from
    assert (spread.spread_from.source_node, spread.spread_from.target_key) == ("regions", "region")

    fixed = dags["fixed_thresholds"]
    # a task node's variants run side by side: a fail-fast DAG, whose result task decides the run
    assert {t.task_id for t in fixed.tasks} == {"regions", "score", STATUS_TASK}
    assert fixed.fail_fast
    score = fixed.get_task("score")
    assert score.expand_input.value["variant"] == [{"threshold": 0.3}, {"threshold": 0.6}]
    assert incoming(score) == {("parameters", "regions", "metadata", "regions", "region")}
    assert spec(score).variants_from is None  # fixed variants: the list value is not spread


def test_deployment_nodes_are_left_out_but_the_order_through_them_is_kept():
    dags = own("06_deployment.yaml")
    dag = dags["train_and_deploy"]
    assert {t.task_id for t in dag.tasks} == {"Train_classifier", "announce"}
    # Train classifier → deploy → announce: announce still runs after the training, as on Valohai
    assert dag.get_task("announce").upstream_task_ids == {"Train_classifier"}
    assert incoming(dag.get_task("announce")) == set()
    analysis = dict(analyses(OWN / "06_deployment.yaml", None, "", None))["train_and_deploy"]
    assert analysis.deps == {("Train_classifier", "announce")}
    # the edges into and out of the deployment are left out: no task receives them (incoming above)
    assert dag.get_task("Train_classifier").downstream_task_ids == {"announce"}
    # what the deployment would have provided: the parameters keep their step defaults
    parameters = dag.get_task("announce").node.step.parameters
    assert (parameters["deployment-id"].default, parameters["version"].default) == ("none", "none")
    assert {t.task_id for t in dags["deploy_only"].tasks} == {"Train_classifier"}


def test_order_is_kept_through_a_chain_of_deployment_nodes(tmp_path):
    path = tmp_path / "valohai.yaml"
    path.write_text(
        "- step: {name: s, image: busybox, command: date, parameters: [{name: v, type: string}]}\n"
        "- pipeline:\n"
        "    name: p\n"
        "    nodes:\n"
        "      - {name: a, type: execution, step: s}\n"
        "      - {name: d1, type: deployment, deployment: x}\n"
        "      - {name: d2, type: deployment, deployment: y}\n"
        "      - {name: b, type: execution, step: s}\n"
        "      - {name: c, type: execution, step: s}\n"
        "    edges:\n"
        "      - [a.output.m, d1.file.e.m]\n"
        "      - [d1.deployment.id, d2.file.e.m]\n"
        "      - [d2.deployment.version_id, b.parameter.v]\n"
        "      - [d1.deployment.id, c.parameter.v]\n"
    )
    dag = build_dags(path)["p"]
    assert dag.get_task("b").upstream_task_ids == {"a"}
    assert dag.get_task("c").upstream_task_ids == {"a"}
    assert dag.get_task("a").upstream_task_ids == set()
    assert incoming(dag.get_task("b")) == set()
    assert dag.get_task("b").node.step.parameters["v"].default is None  # it keeps its unset step default
