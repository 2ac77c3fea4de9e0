"""Artifact stores: content-addressed, immutable; what every store shares (the protocol is
:class:`~airflow_valohai_reuse.contracts.ArtifactStore`; registry.py chooses a store by the URI's scheme)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlparse

from airflow_valohai_reuse.contracts import ArtifactStore
from airflow_valohai_reuse.errors import StoreError


def verify_all(store: ArtifactStore, checks: Sequence[tuple[str, int, str | None]]) -> list[bool]:
    """:meth:`ArtifactStore.exists` of each (URI, size, sha256), at the cost of a few calls whatever
    their number: a store that checks many at once does (``exists_all``: the local store reads the
    kept checksums in one query, S3 lists the key prefixes); one whose checks are network round trips
    (``concurrent_checks`` above 1) is asked them at once."""
    many = getattr(store, "exists_all", None)
    if many is not None:
        return list(many(checks))
    width = min(getattr(store, "concurrent_checks", 1), len(checks))
    if width <= 1:
        return [store.exists(*check) for check in checks]
    with ThreadPoolExecutor(width, thread_name_prefix="valohai-reuse-verify") as pool:
        return list(pool.map(lambda check: store.exists(*check), checks))


def file_uri_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise StoreError(f"not a local file URI: {uri}")
    return Path(unquote(parsed.path))


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link where the filesystem allows (no bytes copied), a copy otherwise."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
