"""Another commit's project files on the host, for a node with ``commit:``: read once per tree.

The files are written from git's own objects (``git ls-tree`` and ``git cat-file --batch``) into
``<work_dir>/commits/<tree id>``, one folder per tree, made under a temporary name and renamed into
place, so concurrent tasks share one copy and never see half of one. ``git archive`` is not used: it
applies ``export-ignore`` and ``export-subst`` attributes, so its files can differ from the tree's.

Each file's sha256 is computed while it is written and kept in the folder's manifest with its git
mode; the code fingerprint uses those sha256s like a working tree's, so a commit whose files equal
the working tree's reuses the same executions. git's blob ids (sha1 of git's blob format) only
check the copy: each written file must hash to its blob id, or the folder is not kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from airflow_valohai_reuse.errors import ValohaiReuseError
from airflow_valohai_reuse.pipeline.commits import CommitRef

MANIFEST = ".valohai-reuse-manifest.json"
#: the folder of ``work_dir`` that holds the trees' copies; gc ages each tree by its last use
COMMITS_DIR = "commits"
_MODES = {"100644": False, "100755": True}  # regular files; links (120000) and submodules are left out


class CommitCodeError(ValohaiReuseError):
    """Another commit's files cannot be read from the repository."""


@dataclass(frozen=True)
class CommitFiles:
    """A tree's files on the host: ``root`` holds them; ``files``: name → (sha256, executable)."""

    root: Path
    files: dict[str, tuple[str, bool]]


def _entries(ref: CommitRef) -> list[tuple[str, str, bool]]:
    """(blob id, path, executable) of every regular file of the tree."""
    done = subprocess.run(
        ["git", "--git-dir", ref.git_dir, "ls-tree", "-r", "-z", "--full-tree", ref.tree],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise CommitCodeError(
            f"commit {ref.name!r}: tree {ref.tree} cannot be listed in {ref.git_dir}: "
            f"{done.stderr.decode(errors='replace').strip()}"
        )
    entries = []
    for item in done.stdout.split(b"\0"):
        if not item:
            continue
        meta, name = item.split(b"\t", 1)
        mode, kind, blob = meta.decode().split()
        if kind == "blob" and mode in _MODES:
            entries.append((blob, name.decode("utf-8", "surrogateescape"), _MODES[mode]))
    return entries


def _write(ref: CommitRef, entries: list[tuple[str, str, bool]], root: Path) -> dict[str, tuple[str, bool]]:
    process = subprocess.Popen(
        ["git", "--git-dir", ref.git_dir, "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    files: dict[str, tuple[str, bool]] = {}
    try:
        for blob, name, executable in entries:
            process.stdin.write(f"{blob}\n".encode())
            process.stdin.flush()
            header = process.stdout.readline().split()
            size = int(header[2])
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            check, sha256 = hashlib.sha1(f"blob {size}\0".encode()), hashlib.sha256()
            with open(target, "wb") as out:
                left = size
                while left:
                    chunk = process.stdout.read(min(left, 1 << 20))
                    if not chunk:
                        raise CommitCodeError(f"commit {ref.name!r}: git stopped while giving {name}")
                    check.update(chunk)
                    sha256.update(chunk)
                    out.write(chunk)
                    left -= len(chunk)
            process.stdout.read(1)  # the newline after each object
            if check.hexdigest() != blob:
                raise CommitCodeError(f"commit {ref.name!r}: {name} does not match its blob {blob}")
            os.chmod(target, 0o555 if executable else 0o444)
            files[name] = (sha256.hexdigest(), executable)
    finally:
        process.stdin.close()
        process.wait()
    return files


def commit_files(ref: CommitRef, work_dir: Path) -> CommitFiles:
    """The tree's files under ``work_dir``, written on first use and read from the manifest after."""
    root = work_dir / COMMITS_DIR / ref.tree
    manifest = root / MANIFEST
    if manifest.exists():
        data = json.loads(manifest.read_text())
        os.utime(root)  # used now: `valohai-reuse gc` keeps a tree used within its minimum age
        return CommitFiles(root, {name: (sha, bool(x)) for name, (sha, x) in data.items()})
    root.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{ref.tree}.", dir=root.parent))
    try:
        files = _write(ref, _entries(ref), temporary)
        (temporary / MANIFEST).write_text(json.dumps(files, sort_keys=True))
        try:
            os.rename(temporary, root)
        except OSError:  # another task put the same tree in place first: theirs is the same
            if not manifest.exists():
                raise
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return CommitFiles(root, files)
