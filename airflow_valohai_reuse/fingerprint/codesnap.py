"""Code identity: the repository's files by content, and a staged copy that matches them exactly."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.errors import ValohaiReuseError
from airflow_valohai_reuse.fingerprint.checksums import StatCache, cached_digest, copy_and_hash

_SKIP_DIRS = {".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


class CodeChangedError(ValohaiReuseError):
    """A file changed between fingerprinting and staging; running it would break the contract."""


def list_files(repository: Path) -> list[str]:
    """Files of the repository, relative and sorted: git's view where it is a work tree.

    Tracked and untracked-but-not-ignored files count, so what runs is what is there; ignored
    files (build outputs, data caches) stay out.
    """
    try:
        if not _in_git_work_tree(repository):
            raise FileNotFoundError(repository)  # spares a git process that would only say so
        out = subprocess.run(
            ["git", "-C", str(repository), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
        names = [n for n in out.decode("utf-8", "surrogateescape").split("\0") if n]
        root = str(repository)
        return sorted(n for n in names if _regular(f"{root}/{n}"))
    except (OSError, subprocess.CalledProcessError):
        pass
    found: list[str] = []
    for root, dirs, files in os.walk(repository):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in files:
            if _regular(os.path.join(root, name)):
                found.append(Path(root, name).relative_to(repository).as_posix())
    return sorted(found)


def _in_git_work_tree(repository: Path) -> bool:
    """Whether git would find a repository here: a ``.git`` in the folder or above it (or ``GIT_DIR``)."""
    if os.environ.get("GIT_DIR"):
        return True
    folder = repository.resolve()
    return any(os.path.lexists(place / ".git") for place in (folder, *folder.parents))


def _regular(path: str) -> bool:
    """A regular file, not a link (one lstat; links are never followed)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def code_component(
    repository: Path, files: list[str], stat_cache: StatCache, scope: str = "repository"
) -> dict[str, Any]:
    """The ``code`` fingerprint component: each file's sha256 (unchanged files are not re-read),
    and which files are executable, the one mode bit git records (100755 or 100644)."""
    root = str(repository.resolve())
    digests: dict[str, str] = {}
    executable: dict[str, bool] = {}
    for name in files:
        digests[name], stat_ = cached_digest(f"{root}/{name}", stat_cache, resolved=True)
        if stat_.st_mode & stat.S_IXUSR:  # as git decides 100755
            executable[name] = True
    return {"scope": scope, "files": digests, "executable": executable}


def listed_component(listed: dict[str, tuple[str, bool]], files: list[str], scope: str) -> dict[str, Any]:
    """The ``code`` component from files whose sha256 and executable bit are already known (another
    commit's files, hashed once when they were written): the same form as :func:`code_component`'s."""
    return {
        "scope": scope,
        "files": {name: listed[name][0] for name in files},
        "executable": {name: True for name in files if listed[name][1]},
    }


def stage_code(repository: Path, component: dict[str, Any], target: Path) -> None:
    """Copy exactly the fingerprinted files with the fingerprinted mode; a file that changed since
    is an error, never a silent run."""
    executable = component.get("executable", {})
    for name, expected in component["files"].items():
        dst = target / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        mode = 0o755 if executable.get(name) else 0o644
        actual, _size = copy_and_hash(repository / name, dst, mode)
        if actual != expected:
            raise CodeChangedError(
                f"{name} changed while the node was being prepared (sha256 {expected[:8]}… → "
                f"{actual[:8]}…); retry the task"
            )
