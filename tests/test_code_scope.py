"""Code scope: a step's fingerprint covers its own code, and what runs is what was fingerprinted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from harness import copy_project, run
from valohai_yaml import parse

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.fingerprint.scope import CodeScope, ScopeMode, scoped_files

pytestmark = pytest.mark.slow

SCOPED = Path(__file__).resolve().parent / "pipelines" / "scoped"


def _write(root: Path, files: dict[str, str]) -> list[str]:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return sorted(files)


def _step(command: str):
    return parse([{"step": {"name": "s", "image": "x", "command": command}}]).steps["s"]


def test_auto_scope_follows_commands_imports_and_named_files(tmp_path):
    files = _write(
        tmp_path,
        {
            "train.py": "import models.net\nfrom utils import helper\nopen('configs/a.json')\n",
            "models/__init__.py": "",
            "models/net.py": "from .layers import dense\n",
            "models/layers.py": "",
            "utils/__init__.py": "",
            "utils/helper.py": "",
            "configs/a.json": "{}",
            "preprocess.py": "import csv\n",
            "requirements.txt": "numpy\n",
            "README.md": "",
        },
    )
    train = scoped_files(
        tmp_path, files, _step("pip install -r requirements.txt\npython train.py"), CodeScope()
    )
    assert train == [
        "configs/a.json",
        "models/__init__.py",
        "models/layers.py",
        "models/net.py",
        "requirements.txt",
        "train.py",
        "utils/__init__.py",
        "utils/helper.py",
    ]
    prep = scoped_files(tmp_path, files, _step("python ./preprocess.py {parameters}"), CodeScope())
    assert prep == ["preprocess.py", "requirements.txt"]
    module = scoped_files(tmp_path, files, _step("python -m models.net"), CodeScope())
    assert "models/layers.py" in module
    assert scoped_files(tmp_path, files, _step("date"), CodeScope(ScopeMode.REPOSITORY)) == files
    widened = scoped_files(tmp_path, files, _step("date"), CodeScope(include=("README.md",)))
    assert widened == ["README.md", "requirements.txt"]


def test_changing_one_steps_code_reruns_only_that_step(reuse_env, docker_client):
    project = copy_project(SCOPED, reuse_env / "project")
    dag = build_dags(project / "valohai.yaml")["scoped"]
    assert run(dag, docker_client).containers_started == 2

    (project / "lib.sh").write_text('model() { echo "model v2 of: $1"; }\n')
    (project / "NOTES.md").write_text("edited notes\n")
    after_train_edit = run(dag, docker_client)
    assert after_train_edit.xcoms["prep"]["reused"] is True
    assert after_train_edit.xcoms["train"]["reused"] is False
    model = after_train_edit.xcoms["train"]["outputs"][0]["uri"].removeprefix("file://")
    assert Path(model).read_text() == "model v2 of: a\nb\n"

    # prep's code changes but its output bytes do not: train is reused (early cutoff)
    (project / "prep.sh").write_text("# sorted input\n" + (project / "prep.sh").read_text())
    after_prep_edit = run(dag, docker_client)
    assert after_prep_edit.xcoms["prep"]["reused"] is False
    assert after_prep_edit.xcoms["train"]["reused"] is True
    assert after_prep_edit.containers_started == 1


def test_uncommitted_edit_runs_and_never_poisons_the_committed_entry(reuse_env, docker_client):
    project = copy_project(SCOPED, reuse_env / "project")
    git = ["git", "-C", str(project), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    dag = build_dags(project / "valohai.yaml")["scoped"]
    committed = run(dag, docker_client)

    original = (project / "lib.sh").read_text()
    (project / "lib.sh").write_text('model() { echo "work in progress: $1"; }\n')
    edited = run(dag, docker_client)
    assert edited.xcoms["train"]["reused"] is False
    wip = Path(edited.xcoms["train"]["outputs"][0]["uri"].removeprefix("file://")).read_text()
    assert wip.startswith("work in progress")

    (project / "lib.sh").write_text(original)
    back = run(dag, docker_client)
    assert back.xcoms["train"]["reused_from"] == committed.xcoms["train"]["execution_id"]
    text = Path(back.xcoms["train"]["outputs"][0]["uri"].removeprefix("file://")).read_text()
    assert text == "model v1 of: a\nb\n"


def test_a_step_starved_by_its_scope_is_told_the_file_and_the_include(
    tmp_path, reuse_env, docker_client, capfd
):
    """A file the scope cannot see named (a path put together at run time) is missing in the
    container: the task's log names it and the valohai-reuse.yaml that brings it in."""
    project = tmp_path / "starved"
    _write(
        project,
        {
            "valohai.yaml": (
                "- step:\n    name: report\n    image: valohai-reuse-example:busybox\n"
                "    command: sh report.sh\n"
                "- pipeline:\n    name: starved\n    nodes:\n"
                "      - {name: report, type: execution, step: report}\n    edges: []\n"
            ),
            "report.sh": 'cat "$(echo conf)igs/limits.json" > /valohai/outputs/limits.json\n',
            "configs/limits.json": "{}\n",
        },
    )
    result = run(build_dags(project / "valohai.yaml")["starved"], docker_client)
    assert result.task_states["report"] == "failed"
    log = capfd.readouterr().out
    assert "project files outside its code scope (configs/limits.json)" in log
    assert 'include: ["configs/limits.json"]' in log
