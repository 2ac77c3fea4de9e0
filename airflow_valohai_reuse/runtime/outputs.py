"""Collecting a finished node's outputs into the artifact store, and its printed metadata."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.contracts import ArtifactStore, Output
from airflow_valohai_reuse.errors import OutputError
from airflow_valohai_reuse.fingerprint.checksums import sha256_file
from airflow_valohai_reuse.runtime.properties import is_properties_file, read_properties

log = logging.getLogger(__name__)


def unpublishable_names(outputs_dir: Path) -> list[str]:
    """Output paths that are not valid UTF-8, shown with their bytes escaped.

    Such a name cannot travel in an XCom (JSON text) nor be recreated as a file name downstream,
    so these outputs are refused before anything is stored or recorded.
    """
    bad: list[str] = []
    for root, dirs, files in os.walk(outputs_dir, followlinks=False):
        for name in (*dirs, *files):
            relative = os.path.relpath(os.path.join(root, name), outputs_dir)
            try:
                relative.encode("utf-8")
            except UnicodeEncodeError:
                bad.append(os.fsencode(relative).decode("utf-8", "backslashreplace"))
    return sorted(bad)


def _regular_files(outputs_dir: Path) -> list[str]:
    """Every regular file under ``outputs_dir``, as paths relative to it, in order; links are
    neither followed nor listed (with a warning)."""
    found: list[str] = []
    for root, dirs, files in os.walk(outputs_dir, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            relative = path.relative_to(outputs_dir).as_posix()
            if path.is_symlink() or not path.is_file():
                log.warning("output %s is a link or not a regular file; not stored", relative)
                continue
            found.append(relative)
        for name in list(dirs):
            if Path(root, name).is_symlink():
                log.warning(
                    "output folder %s is a link; not followed", Path(root, name).relative_to(outputs_dir)
                )
                dirs.remove(name)
    return found


def collect_outputs(outputs_dir: Path, store: ArtifactStore) -> list[Output]:
    """Store every regular file under ``outputs_dir`` with its properties; the properties files
    themselves (sidecars, ``valohai.metadata.jsonl``) are read, not stored."""
    bad = unpublishable_names(outputs_dir)
    if bad:
        raise OutputError(
            f"output names that are not valid UTF-8: {', '.join(bad)}; rename them in the step "
            f"(nothing was recorded; the outputs are kept in {outputs_dir})"
        )
    names = _regular_files(outputs_dir)
    properties = read_properties(outputs_dir, names)
    collected: list[Output] = []
    for relative in names:
        if is_properties_file(relative):
            continue
        path = outputs_dir / relative
        sha256 = sha256_file(path)
        size = path.stat().st_size
        uri = store.put(path, sha256, size)
        collected.append(Output(relative, uri, size, sha256, properties.get(relative, {})))
    store.flush()
    return collected


#: the most values of one key a series keeps; longer series are thinned evenly, keeping the last
MAX_POINTS = 1000


@dataclass(frozen=True)
class PrintedMetadata:
    """What a step printed as metadata: the last value of each key, and the series of each key
    printed more than once (at most :data:`MAX_POINTS` values, the first and last among them)."""

    last: dict[str, Any]
    series: dict[str, list[Any]]


def _json_object(line: Any) -> dict[str, Any] | None:
    """A line that is one JSON object and nothing else (strict JSON: NaN and Infinity are not)."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def thin(values: list[Any], limit: int = MAX_POINTS) -> list[Any]:
    """At most ``limit`` of ``values``, evenly spaced, the first and the last kept."""
    if len(values) <= limit:
        return list(values)
    if limit < 2:
        return values[-limit:] if limit else []
    last = len(values) - 1
    return [values[round(i * last / (limit - 1))] for i in range(limit)]


class _Series:
    """One key's values as they are printed, in bounded memory: every ``stride``-th value is kept,
    and the stride doubles (every other kept value dropped) whenever twice the limit is reached."""

    def __init__(self, limit: int) -> None:
        self.limit, self.kept, self.stride, self.count = max(limit, 1), [], 1, 0
        self.last: Any = None

    def add(self, value: Any) -> None:
        if self.count % self.stride == 0:
            self.kept.append(value)
            if len(self.kept) >= 2 * self.limit:
                self.kept, self.stride = self.kept[::2], self.stride * 2
        self.count += 1
        self.last = value

    def values(self) -> list[Any]:
        kept = self.kept if (self.count - 1) % self.stride == 0 else [*self.kept, self.last]
        return thin(kept, self.limit)


def read_metadata(lines: Iterable[Any], max_points: int = MAX_POINTS) -> PrintedMetadata:
    """Valohai metadata: JSON objects printed one per line (valohai-utils' logger prints a newline,
    then one object). Other lines, JSON that is not an object and lines with NaN are ignored."""
    points: dict[str, _Series] = {}
    for line in lines:
        value = _json_object(line)
        for key, item in (value or {}).items():
            points.setdefault(key, _Series(max_points)).add(item)
    last = {key: found.last for key, found in points.items()}
    series = {key: found.values() for key, found in points.items() if found.count > 1}
    return PrintedMetadata(last, series)


def parse_metadata(lines: Iterable[Any]) -> dict[str, Any]:
    """The last value of each key the step printed (what actions and metadata edges read)."""
    return read_metadata(lines).last
