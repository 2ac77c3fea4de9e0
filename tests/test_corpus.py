"""valohai.yaml files become DAGs with the nodes, edges, variants and parameters they declare.

The project's own corpus (``tests/pipelines/corpus``, written for these tests) is always checked.
The shared public files (``../shared/corpus/valohai-yaml`` beside the repository) are checked as an
extra where that folder exists; elsewhere, such as a fresh clone, those tests are skipped and say so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.pipeline.analysis import safe_id
from airflow_valohai_reuse.pipeline.failures import STATUS_TASK

HERE = Path(__file__).resolve().parent
OWN = HERE / "pipelines" / "corpus"
SHARED = HERE.parent.parent / "shared" / "corpus" / "valohai-yaml"
SHARED_ABSENT = f"shared corpus absent: {SHARED} does not exist; only the project's own corpus is checked"
OWN_FILES = sorted(OWN.glob("*.yaml"))
SHARED_FILES = sorted(SHARED.glob("*.yaml"))
TASKS = ("execution", "task")
#: where a node task keeps an incoming edge, by the edge's target kind
KEPT = {"input": ("inputs",), "parameter": ("parameters",), "environment-variable": ("environment",)}
FEATURES = {
    "list edge",
    "dict edge",
    "output glob",
    "input → input",
    "parameter → parameter",
    "metadata → parameter",
    "environment-variable edge",
    "dependency edge",
    "edge into a deployment",
    "edge out of a deployment",
    "pipeline parameter targets",
    "pipeline parameter target",
    "pipeline parameter list default",
    "override",
    "edge-merge-mode replace",
    "edge-merge-mode append",
    "reuse-executions",
    "style multiple",
    "style linear",
    "style logspace",
    "style single",
    "integerify",
    "parameter-sets",
    "task node without blueprint",
}


def _items(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text())


def _pipelines(path: Path) -> list[dict]:
    return [item["pipeline"] for item in _items(path) if "pipeline" in item]


def _ends(edge: list | dict) -> tuple[list[str], list[str]]:
    source, target = edge if isinstance(edge, list) else [edge["source"], edge["target"]]
    return source.split(".", 2), target.split(".", 2)


def _spec(task):
    """The NodeSpec a node task runs with (a mapped task keeps it among its partial arguments)."""
    return task.node if hasattr(task, "node") else task.partial_kwargs["node"]


def _incoming(task) -> set[tuple[str, str, str, str, str]]:
    """The edges a node task receives, each as (where the task keeps it, source node, kind, key, target)."""
    spec = _spec(task)
    kept = {
        "inputs": spec.inputs_from_edges,
        "parameters": spec.parameters_from_edges,
        "environment": spec.environment_from_edges,
        "variants": [spec.variants_from] if spec.variants_from else [],
    }
    return {
        (k, e.source_node, e.source_kind, e.source_key, e.target_key) for k, es in kept.items() for e in es
    }


def _targets(parameter: dict) -> list[str]:
    targets = parameter.get("targets", parameter.get("target", []))
    return [targets] if isinstance(targets, str) else targets


def _features(path: Path) -> set[str]:
    """What one corpus file exercises, read from its YAML rather than from the product."""
    found: set[str] = set()
    for item in _items(path):
        for vp in item.get("task", {}).get("parameters", []):
            found.add(f"style {vp['style']}")
            found |= {"integerify"} if vp["rules"].get("integerify") else set()
        found |= {"parameter-sets"} if item.get("task", {}).get("parameter-sets") else set()
    for pipeline in _pipelines(path):
        kinds = {n["name"]: n["type"] for n in pipeline["nodes"]}
        found |= {"reuse-executions"} if pipeline.get("reuse-executions") else set()
        for node in pipeline["nodes"]:
            found |= {"override"} if "override" in node else set()
            found |= {f"edge-merge-mode {node['edge-merge-mode']}"} if "edge-merge-mode" in node else set()
            found |= {"task node without blueprint"} if node["type"] == "task" and "step" in node else set()
        for pp in pipeline.get("parameters", []):
            found |= {"pipeline parameter targets" if "targets" in pp else "pipeline parameter target"}
            found |= {"pipeline parameter list default"} if isinstance(pp.get("default"), list) else set()
        for edge in pipeline["edges"]:
            found.add("list edge" if isinstance(edge, list) else "dict edge")
            (src, skind, skey), (dst, tkind, _) = _ends(edge)
            found |= {"output glob"} if skind == "output" and "*" in skey else set()
            found |= {"edge into a deployment"} if kinds[dst] == "deployment" else set()
            found |= {"edge out of a deployment"} if kinds[src] == "deployment" else set()
            names = {
                ("input", "input"): "input → input",
                ("parameter", "parameter"): "parameter → parameter",
                ("metadata", "parameter"): "metadata → parameter",
                ("environment-variable", "environment-variable"): "environment-variable edge",
                ("dependency", "dependency"): "dependency edge",
            }
            found |= {names[skind, tkind]} if (skind, tkind) in names else set()
    return found


def _through_deployments(pipeline: dict) -> set[tuple[str, str]]:
    """(source, target) node pairs linked through one or more deployment nodes, read from the YAML."""
    kinds = {n["name"]: n["type"] for n in pipeline["nodes"]}
    links = {(_ends(e)[0][0], _ends(e)[1][0]) for e in pipeline["edges"]}
    pairs = set()
    for src, mid in links:
        frontier, seen = [mid], set()
        while frontier:
            node = frontier.pop()
            if kinds.get(node) != "deployment" or node in seen:
                continue
            seen.add(node)
            for a, b in links:
                if a == node:
                    if kinds[b] in TASKS and kinds[src] in TASKS and b != src:
                        pairs.add((src, b))
                    frontier.append(b)
    return pairs


def _check_deployments(dag, pipeline: dict) -> None:
    if any(n["type"] == "deployment" for n in pipeline["nodes"]):
        assert "deployment node" in dag.doc_md and "left out" in dag.doc_md
    for src, dst in _through_deployments(pipeline):
        assert safe_id(src) in dag.get_task(safe_id(dst)).upstream_task_ids, (src, dst)


def _shared_params() -> list:
    if not SHARED_FILES:
        return [pytest.param(None, id="shared", marks=pytest.mark.skip(reason=SHARED_ABSENT))]
    return [pytest.param(p, id=f"shared/{p.name}") for p in SHARED_FILES]


def _shared_file(prefix: str) -> Path:
    if not SHARED_FILES:
        pytest.skip(SHARED_ABSENT)
    (path,) = [f for f in SHARED_FILES if f.name.startswith(prefix)]
    return path


def _own(name: str) -> dict:
    return build_dags(OWN / name)


def test_own_corpus_is_there_and_covers_every_feature():
    assert [p.name for p in OWN_FILES] == [
        "01_fan-in.yaml",
        "02_parameters.yaml",
        "03_overrides.yaml",
        "04_sweeps.yaml",
        "05_spread.yaml",
        "06_deployment.yaml",
    ]
    covered = set().union(*(_features(p) for p in OWN_FILES))
    assert covered >= FEATURES, sorted(FEATURES - covered)


def test_shared_corpus_is_there():
    if not SHARED.is_dir():
        pytest.skip(SHARED_ABSENT)
    assert len(SHARED_FILES) == 10


@pytest.mark.parametrize("path", [pytest.param(p, id=f"own/{p.name}") for p in OWN_FILES] + _shared_params())
def test_pipelines_build(path):
    dags = build_dags(path)
    assert set(dags) == {safe_id(p["name"]) for p in _pipelines(path)}
    for pipeline in _pipelines(path):
        dag = dags[safe_id(pipeline["name"])]
        assert dag.params["reuse_executions"] is bool(pipeline.get("reuse-executions", False))
        nodes = {n["name"]: n["type"] for n in pipeline["nodes"] if n["type"] in TASKS}
        helpers = {
            t.task_id for t in dag.tasks if t.task_id.endswith("__variants") or t.task_id == STATUS_TASK
        }
        assert {t.task_display_name for t in dag.tasks if t.task_id not in helpers} == set(nodes)
        for name, kind in nodes.items():
            task = dag.get_task(safe_id(name))
            variants = getattr(task, "expand_input", None)
            assert (variants is not None) == (kind == "task"), name
            if variants is not None:
                spread = f"{safe_id(name)}__variants"
                assert variants.value["variant"] or spread in helpers, name
        for edge in pipeline["edges"]:
            (src, skind, skey), (dst, tkind, tkey) = _ends(edge)
            if src in nodes and dst in nodes:
                target = dag.get_task(safe_id(dst))
                assert safe_id(src) in target.upstream_task_ids
                if skind != "dependency":
                    places = KEPT[tkind] + (("variants",) if skind == "metadata" else ())
                    assert any((k, src, skind, skey, tkey) in _incoming(target) for k in places), edge
        for pp in pipeline.get("parameters", []):
            # the raw default: Airflow resolving it would also validate it against its type
            assert dag.params.get_param(pp["name"]).value == pp.get("default")
            for node, _, name in (t.split(".", 2) for t in _targets(pp)):
                assert name in _spec(dag.get_task(safe_id(node))).pipeline_parameters[pp["name"]]
        _check_deployments(dag, pipeline)


def test_both_edge_forms_globs_and_every_edge_kind():
    dags = _own("01_fan-in.yaml")
    dag = dags["solar_readings"]
    assert dag.params["reuse_executions"] is True
    assert dag.get_task("fetch_north").task_display_name == "fetch north"
    merge, report = dag.get_task("merge"), dag.get_task("report")
    assert merge.upstream_task_ids == {"fetch_north", "fetch_south"}
    assert _incoming(merge) == {
        ("inputs", "fetch north", "output", "*.csv", "parts"),
        ("inputs", "fetch south", "output", "hourly/*.csv", "parts"),
        ("environment", "fetch north", "environment-variable", "READINGS_API", "READINGS_API"),
    }
    assert report.upstream_task_ids == {"merge"}
    assert _incoming(report) == {
        ("inputs", "merge", "input", "parts", "sources"),
        ("inputs", "merge", "input", "calendar", "calendar"),
    }
    globs = {n: p.output_globs for n, p in merge.pipeline.nodes.items()}
    assert globs == {"fetch north": ("*.csv",), "fetch south": ("hourly/*.csv",), "merge": (), "report": ()}
    assert dag.get_task("fetch_south").node.step.parameters["site"].default == "south"
    assert dag.get_task("fetch_north").node.step.parameters["site"].default == "north"
    single = dags["one_site"]
    assert single.params["reuse_executions"] is False
    assert _incoming(single.get_task("merge")) == {("inputs", "fetch", "output", "readings-*", "parts")}


def test_pipeline_parameters_reach_their_targets_and_parameters_chain():
    dags = _own("02_parameters.yaml")
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
    assert _incoming(dag.get_task("backtest")) == {
        ("inputs", "fit", "output", "model.pkl", "model"),
        ("parameters", "fit", "parameter", "model-kind", "model-kind"),
    }
    assert dag.get_task("explain").upstream_task_ids == {"backtest"}
    assert _incoming(dag.get_task("explain")) == {
        ("parameters", "backtest", "parameter", "model-kind", "model-kind")
    }
    short = dags["forecast__string_target"]
    assert short.dag_display_name == "forecast, string target"
    assert short.get_task("fit").node.pipeline_parameters == {"kind": ("model-kind",)}
    assert short.params["kind"] == "linear"


def test_overrides_replace_only_what_they_state_and_edge_merge_modes():
    dag = _own("03_overrides.yaml")["cleaning_variants"]
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
    dags = _own("04_sweeps.yaml")
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
    assert _incoming(choose) == {
        ("inputs", "grid", "output", "model-*", "models"),
        ("inputs", "manual", "output", "model-*", "models"),
    }
    assert choose.pipeline.nodes["grid"].mapped and not choose.pipeline.nodes["choose"].mapped
    assert "task node 'grid': 18 variant(s)" in dag.doc_md
    tuned = dags["losses_by_pipeline_parameter"].get_task("tuned").expand_input.value["variant"]
    assert tuned == [{"estimators": n, "loss": loss} for n in (4, 16, 64) for loss in ("squared", "huber")]
    assert all(type(v["estimators"]) is int for v in tuned)


def test_list_metadata_spreads_into_one_variant_per_item():
    dags = _own("05_spread.yaml")
    dag = dags["score_every_region"]
    task, helper = dag.get_task("score"), dag.get_task("score__variants")
    assert helper.upstream_task_ids == {"regions"}
    assert task.upstream_task_ids == {"regions", "score__variants"}
    assert _incoming(task) == {("variants", "regions", "metadata", "regions", "region")}
    assert dag.get_task("summary").upstream_task_ids == {"score"}
    assert "one variant per item of regions's metadata 'regions', as parameter 'region'" in dag.doc_md

    fixed = dags["fixed_thresholds"]
    # a task node's variants run side by side: a fail-fast DAG, whose result task decides the run
    assert {t.task_id for t in fixed.tasks} == {"regions", "score", STATUS_TASK}
    assert fixed.fail_fast
    score = fixed.get_task("score")
    assert score.expand_input.value["variant"] == [{"threshold": 0.3}, {"threshold": 0.6}]
    assert _incoming(score) == {("parameters", "regions", "metadata", "regions", "region")}
    assert "fixed variants, so a list value is not spread" in fixed.doc_md


def test_deployment_nodes_are_left_out_but_the_order_through_them_is_kept():
    dags = _own("06_deployment.yaml")
    dag = dags["train_and_deploy"]
    assert {t.task_id for t in dag.tasks} == {"Train_classifier", "announce"}
    # Train classifier → deploy → announce: announce still runs after the training, as on Valohai
    assert dag.get_task("announce").upstream_task_ids == {"Train_classifier"}
    assert _incoming(dag.get_task("announce")) == set()
    assert "deployment node 'deploy' left out" in dag.doc_md
    assert "'announce' runs after 'Train classifier'" in dag.doc_md
    for edge in (
        "Train classifier.output.model.onnx → deploy.file.classify.model",
        "deploy.deployment.id → announce.parameter.deployment-id",
        "deploy.deployment.version_id → announce.parameter.version",
    ):
        assert f"edge {edge} left out" in dag.doc_md
    # what the deployment would have provided, and what the parameter gets instead
    assert (
        "would provide its deployment id as announce's parameter 'deployment-id'; here that parameter "
        "keeps its step default ('none')" in dag.doc_md
    )
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
    assert "b's parameter 'v'; here that parameter keeps its step default (unset)" in dag.doc_md


def test_shared_deployment_edge_example_keeps_cleanup_after_train():
    dag = build_dags(_shared_file("07_"))["Deployment_edge_pipeline"]
    assert dag.get_task("Cleanup").upstream_task_ids == {"Train"}
    assert "'Cleanup' runs after 'Train'" in dag.doc_md
    assert "its deployment version id as Cleanup's parameter 'version_id'" in dag.doc_md


def test_shared_task_node_examples():
    dag = build_dags(_shared_file("06_"))["train-pipeline"]
    assert dag.get_task("train").expand_input.value["variant"] == [{"epochs": e} for e in (30, 40, 50)]
    dag = build_dags(_shared_file("05_"))["dynamic-task"]
    for name in ("train-with-errors", "train-optional", "train-critical"):
        task = dag.get_task(name)
        helper = dag.get_task(f"{name}__variants")
        assert helper.upstream_task_ids == {"preprocess"}
        assert task.upstream_task_ids >= {"preprocess", helper.task_id}
        assert "one variant per item of preprocess's metadata 'storeids', as parameter 'id'" in dag.doc_md


COLLECTION = HERE / "pipelines" / "collection"


def test_collection_builds_and_says_what_is_not_applied():
    """Files written like public projects' (settings only Valohai's machines have, endpoints, top-level
    deployments, the `blueprint` alias, failure handling): every one builds, and the DAG's
    documentation names what it does not apply."""
    built = {p.name: build_dags(p) for p in sorted(COLLECTION.glob("*.yaml"))}
    assert {name: sorted(dags) for name, dags in built.items()} == {
        "01_runtime-settings.yaml": ["embed_once"],
        "02_endpoints-and-deployments.yaml": ["fit_and_serve"],
        "03_blueprint-alias.yaml": ["tally_twice"],
        "04_failure-handling.yaml": ["failure_handling"],
    }
    doc = built["01_runtime-settings.yaml"]["embed_once"].doc_md
    for words in (
        "`stop-condition` 'metadata.loss < 0.01' is not applied",
        "`mounts` are not mounted",
        "`environment-variable-groups` hf-credentials are Valohai organisation settings",
        "`cache-volumes`",
        "`no-output-timeout` is not applied",
        "`upload-store` 'team-bucket' is not used",
        "`runtime-config-preset` 'gpu-large'",
        "`autorestart`",
        "`environment` 'aws-eu-west-1-g4dn-xlarge' chooses no machine",
        "inputs lookup are `download: on-demand` on Valohai",
    ):
        assert words in doc, words
    tally = built["03_blueprint-alias.yaml"]["tally_twice"]
    assert tally.get_task("two").node.step.command == "echo {parameter-value:count}"  # the later step wins
    assert "valohai-yaml's linter warns: Duplicate step name: tally." in tally.doc_md
    fit = built["02_endpoints-and-deployments.yaml"]["fit_and_serve"]
    assert [t.task_id for t in fit.tasks] == ["fit"]
