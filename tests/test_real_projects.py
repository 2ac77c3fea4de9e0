"""Projects written as public Valohai projects are (tests/projects/), run unmodified through the drop-in
DAG file in the locally built python:3.11-bookworm image: every node succeeds the first time, an
unchanged second run reuses every node, and a one-line change reruns only the nodes it concerns.

What each pins down of Valohai's runtime: ``tumor-classifier`` — image names with their registry
(``docker.io/library/x``, ``docker.io/x``), ``pip install -r requirements.txt`` in the command, a
model pickled by a class of ``utils/`` that the scoring step never imports, ``source`` of a project
shell file before a command, ``*`` crossing folders in edge globs (``model*`` for
``model/model-<id>.pkl``), metadata lines and ``.metadata.json`` sidecars; ``sensor-summary`` — the
/valohai paths and ``VH_*`` variables read without a helper library, a glob over an output sub-folder;
``utils-contract`` — what valohai-utils reads from /valohai/config.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = Path(__file__).resolve().parent / "projects"
IMAGE = "python:3.11-bookworm"


@pytest.fixture(scope="module")
def python_image(docker_client) -> str:
    """The example's image, built by scripts/setup.sh (built here if it is absent)."""
    try:
        docker_client.images.get(IMAGE)
    except Exception:
        subprocess.run([str(ROOT / "scripts" / "build-python-image.sh")], check=True)
    return IMAGE


def _dropin(pipelines: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The DAGs that the drop-in DAG file makes of a pipelines folder, as Airflow's DagBag parses it."""
    from airflow.dag_processing.dagbag import DagBag

    dags = pipelines.parent / "dags"
    dags.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dags" / "valohai_pipelines.py", dags / "valohai_pipelines.py")
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__PIPELINES_FOLDER", str(pipelines))
    bag = DagBag(dag_folder=str(dags))
    assert bag.import_errors == {}
    return bag.dags


def _explained(execution_id: str) -> dict[str, Any]:
    """What ``valohai-reuse explain --json`` prints of an execution."""
    import contextlib
    import io

    from airflow_valohai_reuse.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["explain", execution_id, "--json"]) == 0
    return json.loads(printed.getvalue())


def _project(name: str, reuse_env: Path) -> Path:
    pipelines = reuse_env / "pipelines"
    shutil.copytree(PROJECTS / name, pipelines / name)
    return pipelines


def _ran(result: Any) -> set[str]:
    return {task for task, value in result.xcoms.items() if value and not value["reused"]}


def _blob(output: dict[str, Any]) -> bytes:
    return Path(output["uri"].removeprefix("file://")).read_bytes()


def _twice_then_change(
    name: str, reuse_env: Path, monkeypatch: Any, docker_client: Any, change: tuple[str, str, str]
) -> tuple[Any, Any, Any]:
    """Run the project's pipeline, run it again unchanged, change one line of one file, run it again."""
    pipelines = _project(name, reuse_env)
    dag = _dropin(pipelines, monkeypatch)[name]
    first = run(dag, docker_client)
    assert first.state == "success", first.task_states
    assert _ran(first) == set(first.xcoms) and first.containers_started == len(first.xcoms)
    second = run(dag, docker_client)
    assert second.state == "success", second.task_states
    assert second.containers_started == 0
    for task, value in second.xcoms.items():
        assert value["reused_from"] == first.xcoms[task]["execution_id"], task
    path, old, new = change
    source = pipelines / name / path
    text = source.read_text()
    assert text.count(old) == 1, f"{path} must hold {old!r} once"
    source.write_text(text.replace(old, new))
    third = run(_dropin(pipelines, monkeypatch)[name], docker_client)
    assert third.state == "success", third.task_states
    return first, second, third


def test_a_scikit_learn_project_with_valohai_utils_runs_twice_and_reruns_what_a_model_change_concerns(
    reuse_env, monkeypatch, docker_client, python_image
):
    fit = "LogisticRegression(C=C, max_iter=max_iter)"
    change = ("utils/model.py", fit, fit.replace("C=C", "C=C / 2"))
    first, _, third = _twice_then_change("tumor-classifier", reuse_env, monkeypatch, docker_client, change)
    prepared, fitted, scored = (first.xcoms[t] for t in ("prepare-data", "fit", "score"))
    assert prepared["metadata"] == {"train_rows": 398, "test_rows": 171}
    outputs = {o["name"]: o for o in prepared["outputs"]}
    assert sorted(outputs) == ["data/test.csv", "data/train.csv"]  # sidecars are properties, not outputs
    assert outputs["data/train.csv"]["properties"] == {"valohai.tags": ["tabular"], "rows": 398}
    assert [f["name"] for f in fitted["inputs"]["train"]] == ["train.csv"]
    assert fitted["metadata"]["C"] == 1.0 and fitted["metadata"]["train_accuracy"] > 0.95
    (model,) = fitted["outputs"]
    assert model["name"] == f"model/model-{fitted['execution_id']}.pkl"
    assert [f["name"] for f in scored["inputs"]["model"]] == [model["name"].removeprefix("model/")]
    assert scored["metadata"]["threshold"] == 0.5 and scored["metadata"]["test_accuracy"] > 0.9
    report = {o["name"]: o for o in scored["outputs"]}
    assert sorted(report) == ["report/score.json"]
    assert report["report/score.json"]["properties"] == {"accuracy": scored["metadata"]["test_accuracy"]}
    assert json.loads(_blob(report["report/score.json"]))["threshold"] == 0.5
    # scoring unpickles a class of utils/, which no import of score.py names: its scope widened, and
    # explain says why; preparing the data loads nothing unnamed and keeps its own files
    assert "score.py calls pickle.load" in _explained(scored["execution_id"])["code_scope_widened"]
    assert _explained(prepared["execution_id"])["code_scope_widened"] is None
    # the model's code changed: preprocessing is reused, the model is fitted and scored again
    assert _ran(third) == {"fit", "score"}
    assert third.xcoms["prepare-data"]["reused_from"] == prepared["execution_id"]


def test_a_project_on_plain_valohai_paths_runs_twice_and_reruns_only_the_changed_step(
    reuse_env, monkeypatch, docker_client, python_image
):
    agg = '.agg(["mean", "std", "count"])'
    change = ("summarize.py", agg, agg.replace('"count"', '"min", "max", "count"'))
    first, _, third = _twice_then_change("sensor-summary", reuse_env, monkeypatch, docker_client, change)
    generated, summarized = first.xcoms["generate"], first.xcoms["summarize"]
    assert sorted(o["name"] for o in generated["outputs"]) == [f"readings/sensor-{i}.csv" for i in range(3)]
    assert generated["metadata"]["sensor"] == 2  # the last of the printed lines
    files = sorted(f["name"] for f in summarized["inputs"]["readings"])
    assert files == [f"sensor-{i}.csv" for i in range(3)]
    assert summarized["metadata"]["files"] == 3 and 19 < summarized["metadata"]["overall_mean"] < 23
    (summary,) = summarized["outputs"]
    assert summary["name"] == "summary.csv" and summary["properties"]["sensors"] == 3
    assert _ran(third) == {"summarize"}
    assert b"min,max" in _blob(third.xcoms["summarize"]["outputs"][0])


def test_valohai_utils_reads_the_parameters_inputs_and_execution_the_node_was_given(
    reuse_env, monkeypatch, docker_client, python_image
):
    """valohai-utils from the package index, unmodified, in the container: parameters typed as
    declared (a pipeline parameter overriding one), an upstream node's files matched by a glob across
    folders, a project file as an input's default, the outputs folder and the execution's id."""
    pipelines = _project("utils-contract", reuse_env)
    result = run(_dropin(pipelines, monkeypatch)["utils-contract"], docker_client, {"epochs": 7})
    assert result.state == "success", result.task_states
    check = result.xcoms["check"]
    (seen_output,) = check["outputs"]
    seen = json.loads(_blob(seen_output))
    assert seen["parameters"] == {
        "epochs": [7, "int"],
        "rate": [0.5, "float"],
        "label": ["plain", "str"],
        "verbose": [True, "bool"],
    }
    assert seen["shards"] == ["/valohai/inputs/shards/a.txt", "/valohai/inputs/shards/b.txt"]
    assert seen["notes"] == "/valohai/inputs/notes/notes.txt"
    assert seen["notes_text"] == "notes from the project\n"
    assert seen["output"] == "/valohai/outputs/seen.json"
    assert seen["execution_id"] == check["execution_id"]
    assert check["metadata"] == {"epochs": 7, "shards": 2}
