"""Public projects' files: examples from the shared corpus (skipped where it is absent, saying so) and
the collection written like public projects, whose DAG documentation names what it does not apply."""

from __future__ import annotations

from corpus import COLLECTION, incoming, shared_file, spec

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.pipeline.analysis import analyses
from airflow_valohai_reuse.pipeline.unapplied import step_notes


def _notes(path, dag_id: str) -> list[str]:
    """The notes the DAG's documentation lists: the analysis's, and what its steps set but is not applied."""
    analysis = dict(analyses(path, None, "", None))[dag_id]
    return [*analysis.notes, *step_notes(analysis.steps.values())]


def test_shared_deployment_edge_example_keeps_cleanup_after_train():
    dag = build_dags(shared_file("07_"))["Deployment_edge_pipeline"]
    assert dag.get_task("Cleanup").upstream_task_ids == {"Train"}
    assert dag.get_task("Train").downstream_task_ids == {"Cleanup"}
    # what the deployment would provide is left out: Cleanup's parameters keep their (unset) defaults
    assert incoming(dag.get_task("Cleanup")) == set()
    parameters = dag.get_task("Cleanup").node.step.parameters
    assert (parameters["what_was_deployed"].default, parameters["version_id"].default) == (None, None)


def test_shared_task_node_examples():
    dag = build_dags(shared_file("06_"))["train-pipeline"]
    assert dag.get_task("train").expand_input.value["variant"] == [{"epochs": e} for e in (30, 40, 50)]
    dag = build_dags(shared_file("05_"))["dynamic-task"]
    for name in ("train-with-errors", "train-optional", "train-critical"):
        task = dag.get_task(name)
        helper = dag.get_task(f"{name}__variants")
        assert helper.upstream_task_ids == {"preprocess"}
        assert task.upstream_task_ids >= {"preprocess", helper.task_id}
        spread = spec(task).variants_from  # one variant per item of preprocess's metadata 'storeids'
        assert (spread.source_node, spread.source_key, spread.target_key) == ("preprocess", "storeids", "id")


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
    # what is not applied exists only as the documentation's notes: each names its setting
    notes = _notes(COLLECTION / "01_runtime-settings.yaml", "embed_once")
    doc = built["01_runtime-settings.yaml"]["embed_once"].doc_md
    assert notes and all(note in doc for note in notes)
    for setting in (
        "`stop-condition`",
        "`mounts`",
        "`environment-variable-groups`",
        "`cache-volumes`",
        "`no-output-timeout`",
        "`upload-store`",
        "`runtime-config-preset`",
        "`autorestart`",
        "`environment`",
        "`download: on-demand`",
    ):
        assert any(setting in note for note in notes), setting
    tally = built["03_blueprint-alias.yaml"]["tally_twice"]
    assert tally.get_task("two").node.step.command == "echo {parameter-value:count}"  # the later step wins
    warned = _notes(COLLECTION / "03_blueprint-alias.yaml", "tally_twice")  # valohai-yaml's linter's words
    assert any("Duplicate step name" in note for note in warned)
    fit = built["02_endpoints-and-deployments.yaml"]["fit_and_serve"]
    assert [t.task_id for t in fit.tasks] == ["fit"]
