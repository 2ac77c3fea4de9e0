"""Nodes that run a step from another git commit of the project (``commit:`` on a node).

Workers re-parse DAG files before every task, so what is read here must be cheap: one ``git
cat-file --batch`` per commit and parse answers the commit, the project's tree in it and that
commit's valohai.yaml. The files are read only when a node runs (runtime/commitcode.py), from the
tree id found here.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from valohai_yaml.objs import Config

from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.pipeline.pipelinefile import parse_config_text

_NAMES = ("valohai.yaml", "valohai.yml")


@dataclass(frozen=True)
class CommitRef:
    """Where a node's code comes from: the commit, the project's folder in it, and that folder's tree.

    ``git_dir``: the repository's git directory, which the files are read from when the node runs.
    """

    name: str  # as the node wrote it
    commit: str
    tree: str
    prefix: str  # the project's folder inside the repository ("" or "sub/dir/")
    git_dir: str


@dataclass(frozen=True)
class CommitSource:
    ref: CommitRef
    config: Config


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=False)


def _batch(repo: Path, names: list[str]) -> list[tuple[str, str, bytes] | None]:
    """``git cat-file --batch`` for each object name: (id, type, content), or None where missing."""
    out = _git(repo, "cat-file", "--batch", stdin="".join(f"{n}\n" for n in names).encode()).stdout
    found: list[tuple[str, str, bytes] | None] = []
    at = 0
    for _ in names:
        end = out.index(b"\n", at)
        header = out[at:end].decode().split()
        at = end + 1
        if len(header) != 3:  # "<name> missing" or "<name> ambiguous"
            found.append(None)
            continue
        size = int(header[2])
        found.append((header[0], header[1], out[at : at + size]))
        at += size + 1
    return found


class CommitReader:
    """Reads commits of one project's repository, each once per parse."""

    def __init__(self, path: Path, repo: Path) -> None:
        self.path, self.repo = path, repo
        self._seen: dict[str, CommitSource] = {}
        self._where: tuple[str, str] | None = None

    def _location(self, node: str, name: str) -> tuple[str, str]:
        """(git directory, the project's folder inside the repository)."""
        if self._where is None:
            done = _git(self.repo, "rev-parse", "--absolute-git-dir", "--show-prefix")
            lines = done.stdout.decode().splitlines()
            if done.returncode != 0 or len(lines) < 1:
                raise PipelineFileError(
                    str(self.path),
                    f"node {node!r} runs its step from commit {name!r}, but the project folder {self.repo} "
                    "is not in a git repository: keep the project in git, or remove the node's commit",
                )
            self._where = (lines[0], lines[1] if len(lines) > 1 else "")
        return self._where

    def read(self, node: str, name: str, where: str) -> CommitSource:
        if name in self._seen:
            return self._seen[name]
        if name.startswith("library:"):
            raise PipelineFileError(
                str(self.path),
                f"node {node!r} runs a step of Valohai's step library ({name!r}), which exists only on "
                "Valohai: copy the step into this project's valohai.yaml and drop the node's commit",
                where,
            )
        git_dir, prefix = self._location(node, name)
        names = [f"{name}^{{commit}}", f"{name}^{{commit}}:{prefix}"]
        names += [f"{name}^{{commit}}:{prefix}{file}" for file in _NAMES]
        commit, tree, *files = _batch(self.repo, names)
        if commit is None or tree is None or tree[1] != "tree":
            raise PipelineFileError(
                str(self.path),
                f"node {node!r} names commit {name!r}, which is not a commit of the git repository at "
                f"{self.repo}{'' if commit is None else f' that has the folder {prefix!r}'}: fetch it "
                "(git fetch), or correct the node's commit",
                where,
            )
        text = next((f[2] for f in files if f is not None and f[1] == "blob"), None)
        if text is None:
            raise PipelineFileError(
                str(self.path),
                f"node {node!r} names commit {name!r}, which has no {prefix}valohai.yaml",
                where,
            )
        label = f"{self.path} at commit {commit[0][:12]}"
        config = parse_config_text(text.decode("utf-8", "replace"), label)
        source = CommitSource(CommitRef(name, commit[0], tree[0], prefix, git_dir), config)
        self._seen[name] = source
        return source


def commit_notes(refs: dict[str, CommitRef]) -> list[str]:
    return [
        f"node {name!r} runs its step as defined at commit {ref.name!r} ({ref.commit[:12]}), with that "
        f"commit's files (tree {ref.tree[:12]}{f' of {ref.prefix}' if ref.prefix else ''})"
        for name, ref in refs.items()
    ]
