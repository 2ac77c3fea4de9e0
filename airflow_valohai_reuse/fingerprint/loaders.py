"""Calls that load code the importing file never names: unpickling, ``importlib``, ``runpy``.

A pickled model refers to its class by module path (``utils.model.TumorClassifier``); unpickling
imports that module although no ``import`` statement says so. The automatic code scope cannot know
which project modules such a call reaches, so a file that makes one widens its step's scope to the
project's Python code (scope.py).
"""

from __future__ import annotations

import ast

#: dotted names (after resolving import aliases) of calls that may import any module of the project
LOADERS = frozenset(
    {
        "pickle.load",
        "pickle.loads",
        "pickle.Unpickler",
        "_pickle.load",
        "_pickle.loads",
        "dill.load",
        "dill.loads",
        "cloudpickle.load",
        "cloudpickle.loads",
        "joblib.load",
        "sklearn.externals.joblib.load",
        "torch.load",
        "pandas.read_pickle",
        "skops.io.load",
        "importlib.import_module",
        "importlib.__import__",
        "importlib.util.spec_from_file_location",
        "importlib.util.find_spec",
        "runpy.run_path",
        "runpy.run_module",
        "__import__",
    }
)
#: loaders that import classes only when asked to: ``numpy.load(..., allow_pickle=True)``
_WHEN_ALLOWED = {"numpy.load": "allow_pickle"}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name → dotted name it stands for (``pk`` → ``pickle``, ``load`` → ``joblib.load``)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(func: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    parts.append(func.id)
    return ".".join(reversed(parts))


def _allowed(call: ast.Call, keyword: str) -> bool:
    for kw in call.keywords:
        if kw.arg == keyword:
            return not (isinstance(kw.value, ast.Constant) and not kw.value.value)
    return False


def loader_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted name) of each call in ``tree`` that may import project modules unnamed."""
    aliases = _aliases(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        resolved = aliases.get(head, head) + (f".{rest}" if rest else "")
        if resolved in LOADERS or (resolved in _WHEN_ALLOWED and _allowed(node, _WHEN_ALLOWED[resolved])):
            found.append((node.lineno, resolved))
    return sorted(found)
