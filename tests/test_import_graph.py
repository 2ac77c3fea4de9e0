"""The package's import graph: no cycles, no import up the layers, and a function-local import of the
package's own modules only where a comment in its function says what importing it there saves.

The layers, lowest first, are written here once (CONTRIBUTING.md points at them). A module may import
modules of its own layer or any lower one; a cycle is refused within a layer too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "airflow_valohai_reuse"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
#: top-level modules and subpackages by layer, lowest first; "" is the package's own __init__
LAYERS = (
    ("errors", "get_provider_info", "contracts", "internals", "background"),
    ("fingerprint",),
    ("settings",),
    ("stores", "pipeline"),
    ("cache", "runtime"),
    ("reuse", "triggers"),
    ("operators",),
    ("factory",),
    ("plugins", "preflight", "cli_cache", "cli", "celery_preload", ""),
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    top = module.removeprefix(PACKAGE).removeprefix(".").split(".")[0]
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module}: its top-level name {top!r} is in no layer of LAYERS")


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> Iterator[str]:
    """The package's modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
        names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
    yield from (name for name in names if name in MODULES and name != module)


def _says_why(line: str) -> bool:
    """A comment in words, not a tool's marker (``# noqa``, ``# type:``)."""
    comment = line.partition("#")[2].strip()
    return bool(comment) and not comment.startswith(("noqa", "type:"))


def _type_checking(tree: ast.Module) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside |= {id(n) for n in ast.walk(node)}
    return inside


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str, bool]]]:
    """Runtime import edges, and each function-local import: (module, line, target, explained)."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    local: list[tuple[str, int, str, bool]] = []
    for module, path in MODULES.items():
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        hidden = _type_checking(tree)
        for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    said = any(_says_why(line) for line in lines[function.lineno - 1 : node.lineno])
                    local += [(module, node.lineno, t, said) for t in _targets(node, module)]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in hidden:
                edges[module] |= set(_targets(node, module))
    return edges, local


def _reach(edges: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    pending = list(edges[start])
    while pending:
        node = pending.pop()
        if node not in seen:
            seen.add(node)
            pending += edges[node]
    return seen


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others."""
    reach = {node: _reach(edges, node) for node in edges}
    looping = [node for node in edges if node in reach[node]]
    groups = {tuple(sorted(n for n in reach[node] if node in reach[n])) for node in looping}
    return sorted(list(group) for group in groups)


def test_the_package_has_no_import_cycle():
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_no_module_imports_a_higher_layer():
    edges, _ = _graph()
    upward = [
        f"{module} imports {target}"
        for module, targets in sorted(edges.items())
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_a_function_local_import_of_the_package_says_why():
    _, local = _graph()
    unexplained = [f"{module}:{line} imports {target}" for module, line, target, said in local if not said]
    assert unexplained == []


def test_the_checks_see_a_cycle_and_an_upward_import():
    """The graph walk itself, on edges that break both rules."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert _layer(f"{PACKAGE}.errors") < _layer(f"{PACKAGE}.plugins.app")
