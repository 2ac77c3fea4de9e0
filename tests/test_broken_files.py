"""A corpus of broken valohai.yaml files, one per kind of mistake: each gives one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.errors import PipelineFileError

BROKEN = Path(__file__).resolve().parent / "pipelines" / "broken"

EXPECTED = {
    "yaml-syntax": "YAML syntax",
    "not-a-list": "the top level must be a list of items, not dict",
    "missing-image": "'image' is a required property",
    "unknown-field": "'colour' was unexpected",
    "undefined-step": "node 'n' uses step 'missing', which is not defined",
    "short-edge": "must have 3 parts",
    "duplicate-task-id": "two nodes map to task id 'n_1'",
    "bad-parameter-target": "target 'nowhere.parameter.q' is not node.parameter.name",
    "unsupported-edge": "edge n.output.x → m.parameter.y: unsupported edge kind",
    "plural-edge-type": "'outputs' is not an edge type (one of dependency, deployment, environment-variable, "
    "file, input, metadata, output, parameter); did you mean 'output'?",
    "unknown-edge-node": "source node 'trian' is not a node of the pipeline; did you mean 'train'?",
    "override-unknown-input": 'valohai-yaml\'s linter: Pipeline "p" node "t" step "train": input imagse '
    "does not exist in step (an override or a pipeline parameter can only name what the step declares",
    "parameter-target-undeclared": "target 't.parameter.epoch' names parameter 'epoch', which step 'train' "
    "does not declare; did you mean 'epochs'?",
    "invalid-stop-condition": "valohai-yaml's linter: Step train, `stop-condition` is not a valid expression",
    "library-step": "node 'convert' runs a step of Valohai's step library",
    "random-sweep": "random",
}


def test_every_kind_of_mistake_has_a_file():
    assert sorted(p.stem for p in BROKEN.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_broken_file_gives_one_clear_error_naming_the_file(kind):
    path = BROKEN / f"{kind}.yaml"
    with pytest.raises(PipelineFileError) as caught:
        build_dags(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert EXPECTED[kind] in message
    assert "Traceback" not in message


def test_every_refusal_is_justified_in_the_docs():
    table = (BROKEN.parent.parent.parent / "docs" / "valohai-yaml-support.md").read_text()
    missing = [kind for kind in EXPECTED if f"| `{kind}.yaml` |" not in table]
    assert not missing, f"refusals without a row in docs/valohai-yaml-support.md: {missing}"


def test_a_task_for_another_dag_neither_validates_nor_refuses_a_broken_file():
    """A worker parsing its DAG file for one task builds only that DAG: a file whose pipelines and steps
    are named otherwise is not validated, so its mistake neither fails nor slows the task."""
    path = BROKEN / "missing-image.yaml"  # step "a", refused by the schema
    assert build_dags(path, only_dag_id="basic") == {}
    with pytest.raises(PipelineFileError, match="'image' is a required property"):
        build_dags(path, only_dag_id="step_a")  # the step's own DAG id is still read in full


@pytest.mark.parametrize("kind", ["not-a-list", "yaml-syntax"])
def test_a_file_whose_names_cannot_be_read_is_read_in_full_for_any_dag(kind):
    with pytest.raises(PipelineFileError, match=EXPECTED[kind]):
        build_dags(BROKEN / f"{kind}.yaml", only_dag_id="basic")
