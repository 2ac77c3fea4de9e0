"""Fingerprints: named components, one versioned digest, and typed diffs that explain a miss.

Pure code: the standard library only. Every component is plain JSON data, built elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_valohai_reuse.contracts import ChangeKind
from airflow_valohai_reuse.fingerprint.canonical import digest

#: Bump when the meaning of a component changes; old cache rows then stop matching on purpose.
#: 2: the code component records executable files; the step records parameter order where a
#: command's ``{parameters}`` depends on it; secret parameters are kept as salted hashes.
#: 3: the step's commands run as Valohai runs them (bash where the image has it, the last command's
#: status decides, a shebang line is honoured), so a past run under ``/bin/sh`` with ``set -e``
#: stands for no current one.
FINGERPRINT_VERSION = 3

COMPONENTS = ("step", "code", "parameters", "inputs", "image", "environment")


@dataclass(frozen=True)
class Fingerprint:
    """The components that determine a node's result, and their digest."""

    components: Mapping[str, Any]
    version: int = FINGERPRINT_VERSION

    def __post_init__(self) -> None:
        missing = [name for name in COMPONENTS if name not in self.components]
        extra = [name for name in self.components if name not in COMPONENTS]
        if missing or extra:
            raise ValueError(f"fingerprint components: missing {missing}, unknown {extra}")

    @property
    def digest(self) -> str:
        return digest({"version": self.version, "components": dict(self.components)}, path="fingerprint")


@dataclass(frozen=True)
class Change:
    """One difference between two fingerprints: where, what kind, and the two values."""

    component: str
    path: tuple[str, ...]
    kind: ChangeKind
    old: Any = None
    new: Any = None


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Typed changes from the ``old`` components to the ``new`` ones, in a stable order."""
    changes: list[Change] = []
    for name in COMPONENTS:
        _diff_value(name, (), old.get(name), new.get(name), changes)
    return changes


def _diff_value(component: str, path: tuple[str, ...], old: Any, new: Any, out: list[Change]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if key not in old:
                out.append(Change(component, (*path, key), ChangeKind.ADDED, None, new[key]))
            elif key not in new:
                out.append(Change(component, (*path, key), ChangeKind.REMOVED, old[key], None))
            else:
                _diff_value(component, (*path, key), old[key], new[key], out)
        return
    out.append(Change(component, path, ChangeKind.CHANGED, old, new))


def _short(value: Any) -> str:
    if isinstance(value, dict) and "sha256" in value:
        value = value["sha256"]
    text = value if isinstance(value, str) else repr(value)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:8] + "…"
    if text.startswith("sha256:") and len(text) > 20:
        return text[:15] + "…"
    return text if len(text) <= 60 else text[:57] + "…"


_NOUNS = {
    "parameters": "parameter",
    "inputs": "input",
    "code": "code",
    "image": "image",
    "environment": "environment",
    "step": "step",
}


def _where(change: Change) -> str:
    if change.component == "code" and change.path[:1] == ("files",):
        return "/".join(change.path[1:])
    if change.component == "inputs":
        return "/".join(part for part in change.path if part != "sha256")
    return "/".join(change.path)


def describe_change(change: Change) -> str:
    """One change in words, e.g. ``parameter epochs 3 → 4``."""
    if change.component == "code" and change.path[:1] == ("executable",):
        became = "became executable" if change.kind is ChangeKind.ADDED else "is no longer executable"
        return f"code {'/'.join(change.path[1:])} {became}"
    subject = f"{_NOUNS[change.component]} {_where(change)}".rstrip()
    if change.kind is ChangeKind.ADDED:
        return f"{subject} added ({_short(change.new)})"
    if change.kind is ChangeKind.REMOVED:
        return f"{subject} removed (was {_short(change.old)})"
    if change.component == "inputs" or change.path[:1] == ("files",):
        return f"{subject} changed (sha256 {_short(change.old)} → {_short(change.new)})"
    return f"{subject} {_short(change.old)} → {_short(change.new)}"


def describe(changes: list[Change], *, limit: int = 20) -> str:
    """All changes in one line, the form the task log and ``explain`` use."""
    if not changes:
        return "no differences"
    words = [describe_change(c) for c in changes[:limit]]
    if len(changes) > limit:
        words.append(f"and {len(changes) - limit} more")
    return _printable("; ".join(words))


def _printable(text: str) -> str:
    """File names that are not valid UTF-8 (lone surrogates here) shown with their bytes escaped, so
    the words can be logged and stored as text."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
