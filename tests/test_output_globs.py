"""Edge globs select upstream outputs as Valohai selects them: the whole path below /valohai/outputs
against the pattern, ``*`` crossing folders (Valohai's yolo example: ``*best.pt`` for
``exp/weights/best.pt``); where the files land follows the input's ``keep-directories``."""

from __future__ import annotations

import pytest
from valohai_yaml import parse

from airflow_valohai_reuse.errors import InputError
from airflow_valohai_reuse.runtime.inputs import edge_refs, glob_match, placed_name

PUBLISHED = [
    {"name": "exp/weights/best.pt", "uri": "file:///s/1", "checksum": "a" * 64},
    {"name": "exp/weights/last.pt", "uri": "file:///s/2", "checksum": "b" * 64},
    {"name": "model/model-7f3a.pkl", "uri": "file:///s/3", "checksum": "c" * 64},
    {"name": "results/run1/scores.pkl", "uri": "file:///s/4", "checksum": "d" * 64},
    {"name": "metrics.json", "uri": "file:///s/5", "checksum": "e" * 64},
]


def _input(keep: str = "none", optional: bool = False):
    text = (
        "- step:\n    name: s\n    image: i\n    command: c\n    inputs:\n"
        f"      - name: model\n        keep-directories: {keep}\n        optional: {str(optional).lower()}\n"
    )
    return parse(text).steps["s"].inputs["model"]


@pytest.mark.parametrize(
    ("pattern", "selected"),
    [
        ("*best.pt", ["exp/weights/best.pt"]),
        ("model*", ["model/model-7f3a.pkl"]),
        ("*.pkl", ["model/model-7f3a.pkl", "results/run1/scores.pkl"]),
        ("results/*.pkl", ["results/run1/scores.pkl"]),
        ("exp/weights/?est.pt", ["exp/weights/best.pt"]),
        ("**.pt", ["exp/weights/best.pt", "exp/weights/last.pt"]),
        ("metrics.json", ["metrics.json"]),
        ("Metrics.json", []),  # case counts, as in an object store's keys
        ("weights/*", []),  # a pattern is anchored at the outputs root
    ],
)
def test_a_glob_matches_the_whole_path_and_star_crosses_folders(pattern, selected):
    assert [f["name"] for f in PUBLISHED if glob_match(f["name"], pattern)] == selected


def test_files_land_by_base_name_unless_directories_are_kept():
    assert [r.name for r in edge_refs(_input(), PUBLISHED, "*.pkl")] == ["model-7f3a.pkl", "scores.pkl"]
    full = edge_refs(_input("full"), PUBLISHED, "*.pkl")
    assert [r.name for r in full] == ["model/model-7f3a.pkl", "results/run1/scores.pkl"]
    suffix = edge_refs(_input("suffix"), PUBLISHED, "results/*.pkl")
    assert [r.name for r in suffix] == ["run1/scores.pkl"]
    assert [(r.uri, r.checksum) for r in suffix] == [("file:///s/4", "d" * 64)]


def test_the_wildcard_root_is_the_folders_before_the_first_wildcard():
    spec = _input("suffix")
    assert placed_name(spec, "data/2024/a/b.csv", "data/*/a/*.csv") == "2024/a/b.csv"
    assert placed_name(spec, "data/2024/a/b.csv", "data/2024/*") == "a/b.csv"
    assert placed_name(spec, "data/2024/a/b.csv", "*.csv") == "data/2024/a/b.csv"
    assert placed_name(spec, "sub/b.csv", None) == "sub/b.csv"  # already relative to its root


def test_a_glob_that_selects_nothing_names_what_the_upstream_published():
    with pytest.raises(InputError) as caught:
        edge_refs(_input(), PUBLISHED, "checkpoint*", "node 'fit'")
    message = str(caught.value)
    assert message.startswith("input 'model': edge glob 'checkpoint*' selects none of the files node 'fit'")
    assert "exp/weights/best.pt, exp/weights/last.pt, metrics.json, model/model-7f3a.pkl" in message
    assert edge_refs(_input(optional=True), PUBLISHED, "checkpoint*") == []


def test_an_edge_from_an_upstream_input_passes_all_its_files():
    # the key of an input → input edge names the upstream's input, not its files
    assert len(edge_refs(_input(), PUBLISHED[:2], None)) == 2


PIPELINE = """
- step:
    name: fit
    image: valohai-reuse-example:busybox
    command:
      - mkdir -p /valohai/outputs/model
      - echo "weights {parameter-value:seed}" > /valohai/outputs/model/model-$VH_EXECUTION_ID.pkl
      - echo '{}' > /valohai/outputs/summary.json
    parameters:
      - name: seed
        type: integer
        default: 1
- step:
    name: score
    image: valohai-reuse-example:busybox
    command:
      - ls /valohai/inputs/model > /valohai/outputs/received.txt
      - cat /valohai/inputs/model/model-*.pkl >> /valohai/outputs/received.txt
    inputs:
      - name: model
- pipeline:
    name: globs
    reuse-executions: true
    nodes:
      - name: fit
        type: execution
        step: fit
      - name: score
        type: execution
        step: score
    edges:
      - [fit.output.model*, score.input.model]
"""


@pytest.mark.slow
def test_an_edge_glob_selects_a_file_in_a_subfolder_of_the_outputs(reuse_env, docker_client):
    from harness import run

    from airflow_valohai_reuse import build_dags

    project = reuse_env / "project"
    project.mkdir()
    (project / "valohai.yaml").write_text(PIPELINE)
    result = run(build_dags(project / "valohai.yaml")["globs"], docker_client)
    assert result.state == "success", result.task_states
    fit = result.xcoms["fit"]
    (model,) = [o["name"] for o in fit["outputs"] if o["name"].startswith("model/")]
    assert model == f"model/model-{fit['execution_id']}.pkl"
    received = result.xcoms["score"]["inputs"]["model"]
    assert [f["name"] for f in received] == [model.removeprefix("model/")]
    again = run(build_dags(project / "valohai.yaml")["globs"], docker_client)
    assert {t: x["reused"] for t, x in again.xcoms.items()} == {"fit": True, "score": True}
