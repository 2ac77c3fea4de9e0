"""Placing a running node's inputs: exactly the bytes that were fingerprinted, and proof they stayed so.

A node that is reused places nothing. A node that runs gets, under /valohai/inputs:
- artifact-store files (upstream outputs) as hard links: the store's blobs are immutable;
- every other local file as a private copy, hashed while it is written and compared with the
  fingerprint, so a data file rewritten in place during the run cannot reach the container;
- object-store and http(s) files downloaded and checked against their stored checksum or the
  server's validators that were fingerprinted.
After the container exits, :func:`changed_inputs` tells whether any placed file was written since.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from airflow_valohai_reuse.contracts import ArtifactStore
from airflow_valohai_reuse.errors import InputError
from airflow_valohai_reuse.fingerprint.checksums import copy_and_hash, sha256_file
from airflow_valohai_reuse.runtime.inputs import FileRef, safe_name
from airflow_valohai_reuse.runtime.web import fetch_http
from airflow_valohai_reuse.stores.base import file_uri_path
from airflow_valohai_reuse.stores.s3 import download

#: what must be unchanged for a placed file to still hold the bytes the container was given.
#: Not ctime: hard links to the same store blob from other nodes change it legitimately.
_Stamp = tuple[int, int, int]


def place_inputs(inputs: Mapping[str, list[FileRef]], inputs_dir: Path, store: ArtifactStore) -> None:
    """Put every identified input file in place for the container."""
    for name, refs in inputs.items():
        folder = inputs_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        for ref in refs:
            if ref.placed or ref.deferred:
                continue
            dst = folder / safe_name(name, ref.name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            _place(name, ref, dst, store)


def _place(input_name: str, ref: FileRef, dst: Path, store: ArtifactStore) -> None:
    if store.owns(ref.uri):
        store.get(ref.uri, dst)
        return
    if urlparse(ref.uri).scheme != "file":
        raise InputError(input_name, f"cannot place {ref.uri!r}")
    actual, _size = copy_and_hash(file_uri_path(ref.uri), dst, 0o444)
    if actual != ref.checksum:
        raise InputError(
            input_name,
            f"{ref.uri} changed after it was fingerprinted (sha256 {str(ref.checksum)[:8]}… → "
            f"{actual[:8]}…); nothing ran. Retry the task once the file is no longer being written",
        )


def fetch_deferred(inputs: Mapping[str, list[FileRef]], inputs_dir: Path, conn_id: str) -> None:
    """Download the object-store and http(s) inputs of a node that runs, each checked against what
    was fingerprinted. An http(s) file's entry then names its sha256 (what inputs.json shows)."""
    for name, refs in inputs.items():
        for index, ref in enumerate(refs):
            if not ref.deferred:
                continue
            dst = inputs_dir / name / safe_name(name, ref.name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if urlparse(ref.uri).scheme in ("http", "https"):
                sha256, size = fetch_http(name, ref.uri, str(ref.checksum), dst)
                refs[index] = FileRef(ref.name, ref.uri, sha256, size, placed=True)
                continue
            _fetch_s3(name, ref, dst, conn_id)


def _fetch_s3(name: str, ref: FileRef, dst: Path, conn_id: str) -> None:
    download(conn_id, ref.uri, dst)
    if "sha256" in ref.identity and sha256_file(dst) != ref.checksum:
        raise InputError(name, f"{ref.uri} changed after it was fingerprinted; retry the task")


def stamp_inputs(inputs_dir: Path) -> dict[str, _Stamp]:
    """Each placed file's inode, size and modification time, taken before the container starts."""
    stamps: dict[str, _Stamp] = {}
    for path in sorted(inputs_dir.rglob("*")):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            stamps[path.relative_to(inputs_dir).as_posix()] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return stamps


def changed_inputs(inputs_dir: Path, before: Mapping[str, _Stamp]) -> list[str]:
    """Placed files written, replaced or removed since ``before``: the container may have read
    other bytes than the fingerprint says, so such a run must not be recorded."""
    after = stamp_inputs(inputs_dir)
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
