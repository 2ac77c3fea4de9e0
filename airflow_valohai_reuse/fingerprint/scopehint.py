"""A failed step's log, read for project files its code scope left out of /valohai/repository.

A scope that starves a step fails it loudly (a module or file not found); this says which file of
the project that was and the ``include`` of valohai-reuse.yaml that adds it.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.fingerprint.codesnap import list_files

_REPOSITORY = "/valohai/repository/"
#: words of a log line that name something missing: Python's messages, and the shells'
_MODULE = re.compile(r"No module named '([\w.]+)'")
_QUOTED_PATH = re.compile(
    r"(?:No such file or directory|can't open file|not found)[^'\"]*['\"]([^'\"]+)['\"]"
    r"|['\"]([^'\"]+)['\"][^'\"]*(?:No such file or directory|not found)"
)
_SHELL_PATH = re.compile(r"(?:^|\s)([\w./-]+): (?:No such file or directory|not found|can't open)")


def _named(lines: Iterable[str]) -> tuple[list[str], list[str]]:
    """(modules, paths) the log says are missing."""
    modules: list[str] = []
    paths: list[str] = []
    for line in lines:
        modules += _MODULE.findall(line)
        for quoted in _QUOTED_PATH.findall(line):
            paths += [p for p in quoted if p]
        paths += _SHELL_PATH.findall(line)
    return modules, paths


def _relative(path: str) -> str:
    return posixpath.normpath(path.removeprefix(_REPOSITORY).removeprefix("./"))


def _module_candidates(module: str, files: set[str], folders: set[str]) -> list[tuple[str, str]]:
    """(file or folder, include glob) of the project that ``module`` may be: ``a.b`` as ``a/b.py`` or
    package ``a/b/``, at the project's root or below it (a script's folder is on ``sys.path`` too)."""
    path = module.replace(".", "/")

    def ends(name: str, target: str) -> bool:
        return name == target or name.endswith("/" + target)

    found = [(f, f) for f in sorted(files) if ends(f, f"{path}.py")]
    return found + [(d + "/", f"{d}/**") for d in sorted(folders) if ends(d, path)]


def outside_scope(
    lines: Iterable[str], project: Iterable[str], scoped: Iterable[str]
) -> list[tuple[str, str]]:
    """(file or folder, include glob) of each project file the log says is missing that the step's
    scope left out; an empty list when the failure is not that."""
    files = set(project)
    inside = set(scoped)
    folders = {posixpath.dirname(f) for f in files} - {""}
    for folder in list(folders):
        while folder:
            folders.add(folder)
            folder = posixpath.dirname(folder)
    modules, paths = _named(lines)
    found: dict[str, str] = {}
    for module in modules:
        for name, glob in _module_candidates(module, files, folders):
            # a package of which some file was staged imports: the failure is another one
            staged = any(f.startswith(name) for f in inside) if name.endswith("/") else name in inside
            if not staged:
                found.setdefault(name, glob)
    for path in paths:
        name = _relative(path)
        if name in files and name not in inside:
            found.setdefault(name, name)
        elif name in folders and any(f.startswith(name + "/") and f not in inside for f in files):
            found.setdefault(name + "/", f"{name}/**")
    return sorted(found.items())


def hint(step: str, missing: list[tuple[str, str]], include: Iterable[str]) -> str:
    """The log's words: what was left out, and the exact ``include`` that brings it in."""
    names = ", ".join(name for name, _ in missing)
    globs = list(dict.fromkeys([*include, *(glob for _, glob in missing)]))
    return (
        f"step {step!r} failed on project files outside its code scope ({names}): they are in the "
        f"project but were not staged into /valohai/repository. Add them to the step's scope in "
        f"valohai-reuse.yaml beside valohai.yaml:\n"
        f"steps:\n  {json.dumps(step)}:\n    include: {json.dumps(globs)}"
    )


def failure_hint(
    lines: Iterable[str], root: Path, code: Mapping[str, Any], step: str, include: Iterable[str]
) -> str | None:
    """The hint for a failed step whose code was ``code`` (its fingerprint component) from ``root``;
    None when its log names no project file its scope left out."""
    lines = [line for line in lines if isinstance(line, str)]
    if not any(_MODULE.search(line) or "not found" in line or "No such file" in line for line in lines):
        return None  # most failures are not this: the project is not listed for them
    missing = outside_scope(lines, list_files(root), code.get("files", {}))
    return hint(step, missing, include) if missing else None
