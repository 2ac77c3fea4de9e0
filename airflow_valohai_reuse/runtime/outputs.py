"""Collecting a finished node's outputs into the artifact store, and its printed metadata."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.errors import OutputError
from airflow_valohai_reuse.fingerprint.checksums import sha256_file
from airflow_valohai_reuse.records import Output
from airflow_valohai_reuse.stores.base import ArtifactStore

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


def collect_outputs(outputs_dir: Path, store: ArtifactStore) -> list[Output]:
    """Store every regular file under ``outputs_dir``; links are never followed nor stored."""
    bad = unpublishable_names(outputs_dir)
    if bad:
        raise OutputError(
            f"output names that are not valid UTF-8: {', '.join(bad)}; rename them in the step "
            f"(nothing was recorded; the outputs are kept in {outputs_dir})"
        )
    collected: list[Output] = []
    for root, dirs, files in os.walk(outputs_dir, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            relative = path.relative_to(outputs_dir).as_posix()
            if path.is_symlink() or not path.is_file():
                log.warning("output %s is a link or not a regular file; not stored", relative)
                continue
            sha256 = sha256_file(path)
            size = path.stat().st_size
            uri = store.put(path, sha256, size)
            collected.append(Output(relative, uri, size, sha256))
        for name in list(dirs):
            if Path(root, name).is_symlink():
                log.warning(
                    "output folder %s is a link; not followed", Path(root, name).relative_to(outputs_dir)
                )
                dirs.remove(name)
    store.flush()
    return collected


def parse_metadata(lines: Iterable[Any]) -> dict[str, Any]:
    """Valohai metadata: JSON objects printed one per line; the last value of each key wins."""
    found: dict[str, Any] = {}
    for line in lines:
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)
        text = text.strip()
        if not (text.startswith("{") and text.endswith("}")):
            continue
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.update(value)
    return found
