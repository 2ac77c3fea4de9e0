"""Which project files belong to a step: the code scope behind the ``code`` fingerprint component.

``auto`` (the default) follows what the step's commands name: files and folders given as command
arguments (``python train.py``, ``sh prep.sh``, ``python -m pkg.main``), the local modules those
Python files import, repository files their string literals name, files named inside shell scripts,
and the dependency manifests. Where a file of the scope makes a call that may import modules it
never names (unpickling a model whose class lives in the project, ``importlib``: loaders.py), the
scope cannot know which modules those are and widens to all of the project's Python code, saying
why. Only these files are staged into /valohai/repository, so a file outside the scope cannot change
a result unseen: the step fails to find it instead, and scopehint.py names the file and the
``include`` that adds it. ``repository`` takes every file. ``include`` globs widen a scope by hand.
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

from airflow_valohai_reuse.fingerprint.loaders import loader_calls

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


@dataclass(frozen=True)
class Scoped:
    """A step's files under its scope; ``widened``: why the automatic scope took all of the
    project's Python code (empty when it did not)."""

    files: list[str]
    widened: str = ""


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
    path: Path, relative: str, files: set[str], folders: dict[str, list[str]], loaders: list[str]
) -> list[str]:
    """Project files a Python file names; its calls that load modules unnamed go to ``loaders``."""
    try:
        tree = ast.parse(path.read_bytes()[:_MAX_READ])
    except (SyntaxError, ValueError, OSError):
        return []
    loaders += [f"{relative} calls {name}" for _line, name in loader_calls(tree)]
    package = posixpath.dirname(relative)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found += _module_files(alias.name, ("", package), files)
        elif isinstance(node, ast.ImportFrom):
            found += _from_import(node, package, files)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 300:
            found += _as_files(node.value, files, folders)
        elif isinstance(node, ast.Call) and _is_path_join(node.func):
            parts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if parts and len(parts) == len(node.args):  # os.path.join("configs", "train.yaml")
                found += _as_files(posixpath.join(*parts), files, folders)
    return found


def _from_import(node: ast.ImportFrom, package: str, files: set[str]) -> list[str]:
    base = package
    for _ in range(max(node.level - 1, 0)):
        base = posixpath.dirname(base)
    # An absolute import may resolve from the project root or the script's own folder.
    prefixes = (base,) if node.level else ("", package)
    module = node.module or ""
    found = _module_files(module, prefixes, files)
    for alias in node.names:
        found += _module_files(f"{module}.{alias.name}" if module else alias.name, prefixes, files)
    return found


def _is_path_join(func: ast.expr) -> bool:
    return isinstance(func, ast.Attribute) and func.attr == "join" and isinstance(func.value, ast.Attribute)


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
    return scope_of(repository, files, step, scope).files


def scope_of(repository: Path, files: list[str], step: Step, scope: CodeScope) -> Scoped:
    """``step``'s files under ``scope``, and why the automatic scope widened, if it did."""
    if scope.mode is ScopeMode.REPOSITORY:
        return Scoped(list(files))
    known = set(files)
    folders = _folders(files)
    chosen = {f for f in files if any(fnmatch.fnmatchcase(f, p) for p in (*MANIFESTS, *scope.include))}
    named = [f for token in _command_tokens(step) for f in _as_files(token, known, folders)]
    loaders: list[str] = []
    _follow(repository, named, chosen, known, folders, loaders)
    if not loaders:
        return Scoped(sorted(chosen))
    python = [f for f in files if f.endswith(".py")]
    # the widened scope's own references (data files its code names) come with it
    _follow(repository, [f for f in python if f not in chosen], chosen, known, folders, [])
    shown = sorted(set(loaders))
    more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
    why = (
        f"{', '.join(shown[:3])}{more}, which may import project modules no import names (an "
        f"unpickled class's module, say): the scope is the project's Python code ({len(python)} files)"
    )
    return Scoped(sorted(chosen), why)


def _follow(
    repository: Path,
    pending: list[str],
    chosen: set[str],
    known: set[str],
    folders: dict[str, list[str]],
    loaders: list[str],
) -> None:
    """Add ``pending`` to ``chosen`` with every project file they name, transitively."""
    while pending:
        name = pending.pop()
        if name in chosen:
            continue
        chosen.add(name)
        if name.endswith(".py"):
            pending += _python_references(repository / name, name, known, folders, loaders)
        elif name.endswith((".sh", ".bash")):
            pending += _shell_references(repository / name, known, folders)
