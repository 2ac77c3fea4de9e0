"""Projects without pipelines: with step-dags, each step is a single-node DAG whose Params are the
step's parameters and whose executions are reused as a pipeline node's are."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.errors import PipelineFileError

STEPS = Path(__file__).resolve().parent / "pipelines" / "steps"


@pytest.fixture
def project(tmp_path) -> Path:
    from harness import copy_project

    return copy_project(STEPS, tmp_path / "project")


def _types(dag) -> dict:
    return {
        name: (p.value, p.schema.get("type"))
        for name, p in dag.params.items()
        if not name.startswith("reuse")
    }


def test_each_step_becomes_a_dag_with_its_parameters_as_params(project):
    dags = build_dags(project / "valohai.yaml")
    assert set(dags) == {"step_count", "step_shout"}
    count = dags["step_count"]
    assert count.dag_display_name == "step count"
    assert [t.task_id for t in count.tasks] == ["count"]
    assert count.params["reuse_executions"] is True
    assert _types(count) == {"n": (3, ["integer", "null"]), "label": ("plain", ["string", "null"])}
    assert count.params.get_param("n").description == "how many numbers"
    assert _types(dags["step_shout"]) == {
        "loud": (True, ["boolean", "null"]),
        "words": (["a", "b"], ["array", "null"]),
    }
    assert "standalone executions of step 'count' (step-dags)" in count.doc_md


def test_step_dags_is_opt_in_per_project_or_by_setting(project, monkeypatch):
    (project / "valohai-reuse.yaml").unlink()
    assert build_dags(project / "valohai.yaml") == {}
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__STEP_DAGS", "True")
    assert set(build_dags(project / "valohai.yaml")) == {"step_count", "step_shout"}
    (project / "valohai-reuse.yaml").write_text("step-dags: [shout]\n")
    assert set(build_dags(project / "valohai.yaml")) == {"step_shout"}
    (project / "valohai-reuse.yaml").write_text("step-dags: false\n")
    assert build_dags(project / "valohai.yaml") == {}


def test_unknown_step_in_step_dags_names_the_settings_file(project):
    (project / "valohai-reuse.yaml").write_text("step-dags: [cont]\n")
    with pytest.raises(
        PipelineFileError, match=r"valohai-reuse\.yaml at step-dags: step-dags names step 'cont'"
    ):
        build_dags(project / "valohai.yaml")


@pytest.mark.slow
def test_a_standalone_execution_is_reused_and_its_parameters_reach_the_container(
    project, reuse_env, docker_client
):
    from harness import run

    dag = build_dags(project / "valohai.yaml")["step_count"]
    first = run(dag, docker_client, {"n": 4})
    assert first.state == "success", first.task_states
    result = first.xcoms["count"]
    assert (result["parameters"]["n"], result["metadata"]) == (4, {"lines": 4})
    again = run(dag, docker_client, {"n": 4})
    assert again.containers_started == 0
    assert again.xcoms["count"]["reused_from"] == result["execution_id"]
