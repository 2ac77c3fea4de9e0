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
