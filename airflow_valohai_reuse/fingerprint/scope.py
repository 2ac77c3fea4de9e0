"""Which project files belong to a step: the code scope behind the ``code`` fingerprint component.

``auto`` (the default) follows what the step's commands name: files and folders given as command
arguments (``python train.py``, ``sh prep.sh``, ``python -m pkg.main``), the local modules those
Python files import, repository files their string literals name, files named inside shell scripts,
and the dependency manifests. Only these files are staged into /valohai/repository, so a file
outside the scope cannot change a result unseen: the step fails to find it instead. ``repository``
takes every file. ``include`` globs widen a step's scope by hand.
"""

from __future__ import annotations

import ast
import fnmatch
import posixpath
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from valohai_yaml.objs import Step

MANIFESTS = (
    "requirements*.txt",
    "constraints*.txt",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "Pipfile",
    "Pipfile.lock",
    "poetry.lock",
    "uv.lock",
    "environment.yml",
    "environment.yaml",
    "conda.yml",
    "conda.yaml",
)
_MAX_READ = 2 * 1024 * 1024  # larger files are data, not code to scan


class ScopeMode(Enum):
    AUTO = "auto"
    REPOSITORY = "repository"


@dataclass(frozen=True)
class CodeScope:
    mode: ScopeMode = ScopeMode.AUTO
    include: tuple[str, ...] = field(default_factory=tuple)


def _command_tokens(step: Step) -> list[str]:
    commands = step.command if isinstance(step.command, list) else [step.command]
    tokens: list[str] = []
    for command in commands:
        try:
            tokens += shlex.split(command, comments=True)
        except ValueError:
            tokens += command.split()
    if step.source_path:
        tokens.append(step.source_path)
    return tokens


def _as_files(token: str, files: set[str], folders: dict[str, list[str]]) -> list[str]:
    """Project files a token names: a file, a folder's files, or a ``-m`` module."""
    name = posixpath.normpath(token.split("=", 1)[-1].removeprefix("./").removeprefix("/valohai/repository/"))
    if name in files:
        return [name]
    if name in folders:
        return folders[name]
    module = name.replace(".", "/")
    for candidate in (f"{module}.py", f"{module}/__init__.py", f"{module}/__main__.py"):
        if candidate in files:
            return [candidate]
    return []


def _python_references(
    path: Path, relative: str, files: set[str], folders: dict[str, list[str]]
) -> list[str]:
    try:
        tree = ast.parse(path.read_bytes()[:_MAX_READ])
    except (SyntaxError, ValueError, OSError):
        return []
    package = posixpath.dirname(relative)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found += _module_files(alias.name, ("", package), files)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(node.level - 1, 0)):
                base = posixpath.dirname(base)
            # An absolute import may resolve from the project root or the script's own folder.
            prefixes = (base,) if node.level else ("", package)
            module = node.module or ""
            found += _module_files(module, prefixes, files)
            for alias in node.names:
                found += _module_files(f"{module}.{alias.name}" if module else alias.name, prefixes, files)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 300:
            found += _as_files(node.value, files, folders)
    return found


def _module_files(module: str, prefixes: tuple[str, ...], files: set[str]) -> list[str]:
    """Project files a dotted module name resolves to, its packages' ``__init__.py`` included."""
    parts = [p for p in module.split(".") if p]
    found = []
    for prefix in prefixes:
        for depth in range(1, len(parts) + 1):
            path = posixpath.join(prefix, *parts[:depth])
            found += [c for c in (f"{path}.py", f"{path}/__init__.py") if c in files]
    return found


def _shell_references(path: Path, files: set[str], folders: dict[str, list[str]]) -> list[str]:
    try:
        text = path.read_bytes()[:_MAX_READ].decode("utf-8", "replace")
    except OSError:
        return []
    found: list[str] = []
    for word in text.replace(";", " ").replace("|", " ").split():
        found += _as_files(word.strip("\"'`()"), files, folders)
    return found


def _folders(files: Iterable[str]) -> dict[str, list[str]]:
    folders: dict[str, list[str]] = {}
    for name in files:
        parent = posixpath.dirname(name)
        while parent:
            folders.setdefault(parent, []).append(name)
            parent = posixpath.dirname(parent)
    return folders


def scoped_files(repository: Path, files: list[str], step: Step, scope: CodeScope) -> list[str]:
    """The sorted subset of ``files`` (relative paths) that belong to ``step`` under ``scope``."""
    if scope.mode is ScopeMode.REPOSITORY:
        return list(files)
    known = set(files)
    folders = _folders(files)
    chosen = {f for f in files if any(fnmatch.fnmatchcase(f, p) for p in (*MANIFESTS, *scope.include))}
    pending = [f for token in _command_tokens(step) for f in _as_files(token, known, folders)]
    while pending:
        name = pending.pop()
        if name in chosen:
            continue
        chosen.add(name)
        if name.endswith(".py"):
            pending += _python_references(repository / name, name, known, folders)
        elif name.endswith((".sh", ".bash")):
            pending += _shell_references(repository / name, known, folders)
    return sorted(chosen)
