"""Nodes that run a step from another git commit (``commit:`` on a node): that commit's step
definition and files, fingerprinted from that commit's tree, run in a real container."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.pipeline.analysis import analyses

STEP = """\
- step:
    name: greet
    image: valohai-reuse-example:busybox
    command:
      - sh greet.sh {{parameter-value:who}} > /valohai/outputs/greeting.txt
    parameters:
      - name: who
        default: {who}
"""
PIPELINE = """\
- pipeline:
    name: commits
    reuse-executions: true
    nodes:
      - {{name: old, type: execution, step: greet, commit: {old}}}
      - {{name: new, type: execution, step: greet}}
      - {{name: same, type: execution, step: greet, commit: v2}}
    edges:
      - [new.dependency.x, same.dependency.x]
"""


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=env, check=True)
    return done.stdout.decode().strip()


@pytest.fixture
def project(tmp_path) -> Path:
    """A repository whose project folder (``project/``) changed its step between two commits: the
    first commit's step says "old hello" to ``world``, the second's "new hello" to ``airflow``."""
    repo = tmp_path / "repo"
    folder = repo / "project"
    folder.mkdir(parents=True)
    _git(repo, "init", "-q")
    (folder / "greet.sh").write_text('echo "old hello $1"\n')
    (folder / "valohai.yaml").write_text(STEP.format(who="world"))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "old")
    old = _git(repo, "rev-parse", "HEAD")
    (folder / "greet.sh").write_text('echo "new hello $1"\n')
    (folder / "valohai.yaml").write_text(STEP.format(who="airflow") + PIPELINE.format(old=old))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "new")
    _git(repo, "tag", "v2")
    return folder


def test_a_node_takes_its_step_from_its_commit(project):
    dag = build_dags(project / "valohai.yaml")["commits"]
    old, new = dag.get_task("old").node, dag.get_task("new").node
    assert old.step.parameters["who"].default == "world"
    assert new.step.parameters["who"].default == "airflow"
    assert new.commit is None
    assert old.commit.prefix == "project/"
    assert old.commit.commit == _git(project, "rev-parse", "HEAD~1")
    assert old.commit.tree == _git(project, "rev-parse", "HEAD~1:project")
    analysis = dict(analyses(project / "valohai.yaml", None, "", None))["commits"]
    assert set(analysis.commits) == {"old", "same"}  # the nodes that name a commit
    assert analysis.commits["old"].commit == old.commit.commit


@pytest.mark.slow
def test_commit_nodes_run_that_commit_s_files_and_are_reused(project, reuse_env, docker_client):
    from harness import run

    dag = build_dags(project / "valohai.yaml")["commits"]
    first = run(dag, docker_client)
    assert first.state == "success", first.task_states
    texts = {
        task: (Path(x["outputs"][0]["uri"].removeprefix("file://")).read_text().strip())
        for task, x in first.xcoms.items()
    }
    assert texts == {"old": "old hello world", "new": "new hello airflow", "same": "new hello airflow"}
    old_code, new_code = (first.xcoms[t]["fingerprint"] for t in ("old", "new"))
    assert old_code != new_code
    # v2's files are the working tree's, byte for byte: same code, so `same` reused `new`'s execution
    assert first.xcoms["same"]["reused"] is True
    assert first.xcoms["same"]["reused_from"] == first.xcoms["new"]["execution_id"]
    assert first.containers_started == 2
    # another commit's files are read once per tree and kept under the work folder
    trees = sorted(p.name for p in (reuse_env / "work" / "commits").iterdir())
    assert trees == sorted(
        {_git(project, "rev-parse", "HEAD~1:project"), _git(project, "rev-parse", "v2:project")}
    )

    again = run(build_dags(project / "valohai.yaml")["commits"], docker_client)
    assert again.state == "success"
    assert again.containers_started == 0
    # a working-tree edit changes `new`, never the nodes that run a commit's files
    (project / "greet.sh").write_text('echo "newer hello $1"\n')
    edited = run(build_dags(project / "valohai.yaml")["commits"], docker_client)
    assert {t: x["reused"] for t, x in edited.xcoms.items()} == {"old": True, "new": False, "same": True}


@pytest.mark.parametrize(
    ("commit", "problem"),
    [
        (
            "0123456789abcdef0123456789abcdef01234567",
            "names commit '0123456789abcdef0123456789abcdef01234567', which is not a commit of the git "
            "repository",
        ),
        ("no-such-branch", "names commit 'no-such-branch', which is not a commit"),
        ("library:generic-preprocessors/csv-into-parquet", "a step of Valohai's step library"),
    ],
)
def test_a_commit_that_cannot_be_read_is_an_error_naming_file_node_and_commit(project, commit, problem):
    path = project / "valohai.yaml"
    text = path.read_text()
    path.write_text(text.replace("commit: v2}", f"commit: '{commit}'}}"))
    with pytest.raises(PipelineFileError) as caught:
        build_dags(path)
    message = str(caught.value)
    assert message.startswith(f"{path} at pipeline commits: node 'same'"), message
    assert problem in message


def test_a_step_missing_at_that_commit_names_the_commit(project):
    path = project / "valohai.yaml"
    path.write_text(path.read_text().replace("step: greet, commit: v2", "step: wave, commit: v2"))
    with pytest.raises(
        PipelineFileError,
        match=r"node 'same' uses step 'wave', which is not defined in valohai\.yaml at commit 'v2'",
    ):
        build_dags(path)


def test_a_project_outside_git_cannot_name_a_commit(tmp_path):
    path = tmp_path / "valohai.yaml"
    path.write_text(STEP.format(who="x") + PIPELINE.format(old="abc"))
    with pytest.raises(PipelineFileError, match="is not in a git repository"):
        build_dags(path)
