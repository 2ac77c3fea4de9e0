"""Output properties as Valohai reads them: ``<file>.metadata.json`` sidecars and the lines of
``valohai.metadata.jsonl`` in the outputs root (``{"file": "<path>", "metadata": {...}}``, what
valohai-utils' ``output_properties()`` writes). They describe outputs and are not outputs themselves.

A file whose name ends in ``.metadata.json`` is a sidecar wherever it is, as Valohai names them; a
sidecar's properties come first, then each jsonl line that names the same file, later lines winning
key by key. Links are never followed, and a file or an output's properties larger than
:data:`MAX_BYTES` are left out with a warning, as are lines and sidecars that are not JSON objects.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import stat
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROPERTIES_FILE = "valohai.metadata.jsonl"
SIDECAR_SUFFIX = ".metadata.json"
#: the most a sidecar, or one output's properties, may hold; the jsonl file may hold 256 times this
MAX_BYTES = 64 * 1024


def is_properties_file(relative: str) -> bool:
    """Whether an output path names properties rather than an output."""
    return relative == PROPERTIES_FILE or relative.endswith(SIDECAR_SUFFIX)


def _strict(text: str) -> Any:
    """JSON as the standard has it: NaN and Infinity are refused (they could not be published)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _read_regular(path: Path, limit: int) -> str | None:
    """A regular file's text, never through a link; None (with a warning) if it cannot be used."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        log.warning("output properties %s cannot be read (%s); ignored", path.name, exc)
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            log.warning("output properties %s is not a regular file; ignored", path.name)
            return None
        data = handle.read(limit + 1)
    if len(data) > limit:
        log.warning("output properties %s is larger than %d bytes; ignored", path.name, limit)
        return None
    return data.decode("utf-8", "replace")


def _output_name(value: Any) -> str | None:
    """The output path a jsonl line names, relative to the outputs root."""
    if not isinstance(value, str) or not value:
        return None
    name = posixpath.normpath(value.removeprefix("/valohai/outputs/"))
    return None if name.startswith(("/", "../")) or name in (".", "..") else name


def _from_jsonl(text: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    ignored = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            item = _strict(line)
        except ValueError:
            item = None
        name = _output_name(item.get("file")) if isinstance(item, dict) else None
        metadata = item.get("metadata") if isinstance(item, dict) else None
        if name is None or not isinstance(metadata, dict):
            ignored += 1
            continue
        found.setdefault(name, {}).update(metadata)
    if ignored:
        log.warning(
            '%s: %d line(s) are not {"file": ..., "metadata": {...}} objects; ignored',
            PROPERTIES_FILE,
            ignored,
        )
    return found


def _sidecar(path: Path, relative: str) -> dict[str, Any] | None:
    text = _read_regular(path, MAX_BYTES)
    if text is None:
        return None
    try:
        value = _strict(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        log.warning("output properties %s is not a JSON object; ignored", relative)
        return None
    return value


def read_properties(outputs_dir: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each output's properties, by output path; ``names``: every regular file under the outputs."""
    outputs = {n for n in names if not is_properties_file(n)}
    found: dict[str, dict[str, Any]] = {}
    for relative in names:
        if relative.endswith(SIDECAR_SUFFIX):
            target = relative.removesuffix(SIDECAR_SUFFIX)
            value = _sidecar(outputs_dir / relative, relative)
            if value is not None:
                found.setdefault(target, {}).update(value)
    if PROPERTIES_FILE in names:
        text = _read_regular(outputs_dir / PROPERTIES_FILE, MAX_BYTES * 256)
        for target, value in _from_jsonl(text or "").items():
            found.setdefault(target, {}).update(value)
    return {name: value for name, value in found.items() if _usable(name, value, outputs)}


def _usable(name: str, value: dict[str, Any], outputs: set[str]) -> bool:
    if name not in outputs:
        log.warning("output properties name %s, which the step did not write; ignored", name)
        return False
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_BYTES:
        log.warning("the properties of output %s are larger than %d bytes; ignored", name, MAX_BYTES)
        return False
    return True
