"""Which work folders `valohai-reuse gc` may remove: node folders and commits' tree copies unused since
its cutoff, each tree aged by its last use (no Docker: the folders' users are given)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from airflow_valohai_reuse.operators.orphans import _unused_work_dirs
from airflow_valohai_reuse.pipeline.commits import CommitRef
from airflow_valohai_reuse.runtime.commitcode import COMMITS_DIR, MANIFEST, commit_files

HOUR = 3600


def _aged(folder: Path, seconds: float) -> Path:
    folder.mkdir(parents=True)
    (folder / "file").write_text("x")
    then = time.time() - seconds
    for path in (folder / "file", folder):
        os.utime(path, (then, then))
    return folder


def _tree(work: Path, tree: str, seconds: float) -> Path:
    root = _aged(work / COMMITS_DIR / tree, seconds)
    (root / MANIFEST).write_text(json.dumps({"file": ["0" * 64, False]}))
    then = time.time() - seconds
    os.utime(root / MANIFEST, (then, then))
    os.utime(root, (then, then))
    return root


def test_gc_takes_old_node_folders_and_old_trees_but_not_the_commits_folder(tmp_path):
    work = tmp_path / "work"
    old_node, new_node = _aged(work / "dag.t.abc", 2 * HOUR), _aged(work / "dag.t.def", 60)
    old_tree, new_tree = _tree(work, "a" * 40, 2 * HOUR), _tree(work, "b" * 40, 60)
    os.utime(work / COMMITS_DIR, (time.time() - 2 * HOUR,) * 2)
    unused = _unused_work_dirs(work, time.time() - HOUR, [])
    assert unused == sorted([old_node, old_tree])
    assert new_node not in unused and new_tree not in unused and work / COMMITS_DIR not in unused


def test_a_tree_used_again_is_young_for_gc(tmp_path):
    work = tmp_path / "work"
    root = _tree(work, "c" * 40, 2 * HOUR)
    assert _unused_work_dirs(work, time.time() - HOUR, []) == [root]
    ref = CommitRef(name="main", commit="1" * 40, tree="c" * 40, prefix="", git_dir=str(tmp_path))
    files = commit_files(ref, work)  # read from its manifest, as a node with commit: does
    assert files.root == root
    assert _unused_work_dirs(work, time.time() - HOUR, []) == []
