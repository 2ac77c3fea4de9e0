"""A broken valohai.yaml's import error, as Airflow's DagBag stores and the UI shows it: the one-line
``path:line: problem`` first, no traceback above it, the line the problem is on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from airflow_valohai_reuse.factory.dropin import located
from airflow_valohai_reuse.factory.yamllines import line_of
from airflow_valohai_reuse.pipeline.analysis import check_file

ROOT = Path(__file__).resolve().parent.parent
BROKEN = Path(__file__).resolve().parent / "pipelines" / "broken"

# file → the line its problem is on (looked at by hand: the edge, node, parameter or item named)
LINES = {
    "unknown-edge-node.yaml": 9,  # - [trian.output.*, test.input.model]
    "plural-edge-type.yaml": 9,
    "unsupported-edge.yaml": 5,  # edges: [[n.output.x, m.parameter.y]]
    "undefined-step.yaml": 3,
    "yaml-syntax.yaml": 2,
    "missing-image.yaml": 1,
    "override-unknown-input.yaml": 11,  # the node t, whose override names imagse
    "parameter-target-undeclared.yaml": 10,
}


@pytest.mark.parametrize("name", sorted(LINES))
def test_the_problem_points_at_its_line(name, monkeypatch):
    monkeypatch.delenv("AIRFLOW__VALOHAI_REUSE__PIPELINES_FOLDER", raising=False)
    with pytest.raises(Exception) as caught:
        check_file(BROKEN / name)
    error = caught.value
    assert line_of(error.path, error.where, error.problem) == LINES[name]
    assert located(error).startswith(f"{error.path}:{LINES[name]}: ")
    assert error.problem in located(error)


def test_words_that_name_no_line_leave_the_error_as_it_was(tmp_path):
    path = tmp_path / "valohai.yaml"
    path.write_text("- step: {name: a, image: x, command: ls}\n")
    assert line_of(path, None, "the top level must be a list of items, not dict") is None
    assert line_of(path, "pipeline gone", "node 'n' uses step 'missing'") is None
    assert line_of(tmp_path / "absent.yaml", "item 1/step", "schema") is None


@pytest.mark.usefixtures("airflow_db")
def test_airflows_import_error_starts_with_the_line_not_a_traceback(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.delenv("AIRFLOW__VALOHAI_REUSE__PIPELINES_FOLDER", raising=False)
    dags = tmp_path / "dags"
    dags.mkdir()
    for name in ("valohai_pipelines.py", "valohai_pipelines_check.py"):
        shutil.copy(ROOT / "dags" / name, dags / name)
    broken = dags / "project" / "valohai.yaml"
    broken.parent.mkdir()
    shutil.copy(BROKEN / "unknown-edge-node.yaml", broken)
    bag = DagBag(dag_folder=str(dags))
    (text,) = bag.import_errors.values()
    first = text.splitlines()[0]
    assert first.startswith(f"ValohaiYamlError: {broken}:9: at pipeline p: edge trian.output.* "), text
    assert "source node 'trian' is not a node of the pipeline; did you mean 'train'?" in first
    assert "Traceback" not in text.split(first)[0]  # nothing above the message
