"""Public projects' files: examples from the shared corpus (skipped where it is absent, saying so) and
the collection written like public projects, whose DAG documentation names what it does not apply."""

from __future__ import annotations

from corpus import COLLECTION, shared_file

from airflow_valohai_reuse import build_dags


def test_shared_deployment_edge_example_keeps_cleanup_after_train():
    dag = build_dags(shared_file("07_"))["Deployment_edge_pipeline"]
    assert dag.get_task("Cleanup").upstream_task_ids == {"Train"}
    assert "'Cleanup' runs after 'Train'" in dag.doc_md
    assert "its deployment version id as Cleanup's parameter 'version_id'" in dag.doc_md


def test_shared_task_node_examples():
    dag = build_dags(shared_file("06_"))["train-pipeline"]
    assert dag.get_task("train").expand_input.value["variant"] == [{"epochs": e} for e in (30, 40, 50)]
    dag = build_dags(shared_file("05_"))["dynamic-task"]
    for name in ("train-with-errors", "train-optional", "train-critical"):
        task = dag.get_task(name)
        helper = dag.get_task(f"{name}__variants")
        assert helper.upstream_task_ids == {"preprocess"}
        assert task.upstream_task_ids >= {"preprocess", helper.task_id}
        assert "one variant per item of preprocess's metadata 'storeids', as parameter 'id'" in dag.doc_md


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
