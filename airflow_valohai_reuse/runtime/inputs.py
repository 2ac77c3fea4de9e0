"""Resolving a node's inputs to files with checksums, and staging them under /valohai/inputs."""

from __future__ import annotations

import fnmatch
import glob
import os
import posixpath
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from valohai_yaml.objs import Input
from valohai_yaml.objs.input import KeepDirectories

from airflow_valohai_reuse.errors import InputError
from airflow_valohai_reuse.fingerprint.checksums import StatCache, cached_sha256, http_validator_of
from airflow_valohai_reuse.runtime.web import identify_http
from airflow_valohai_reuse.stores.base import file_uri_path
from airflow_valohai_reuse.stores.s3 import remote_checksum


@dataclass(frozen=True)
class FileRef:
    """A file an input receives: its name in the input folder, where it comes from, its checksum."""

    name: str
    uri: str
    #: sha256, or ``etag:…`` for an object-store file the store keeps no sha256 of
    checksum: str | None = None
    size: int | None = None
    #: fetched only when the node runs (an object-store or http(s) input, identified without its bytes)
    deferred: bool = False
    #: already in the node's input folder (downloaded to be hashed)
    placed: bool = False

    @property
    def identity(self) -> dict[str, Any]:
        """What the fingerprint keys on: the sha256, the store's weaker ETag identity, or an http(s)
        server's validator with its URL (fingerprint/checksums.py, ``http_validator``)."""
        if self.checksum and self.checksum.startswith("etag:"):
            return {"etag": self.checksum.removeprefix("etag:")}
        validator = http_validator_of(self.checksum) if self.checksum else None
        if validator is not None:
            return {"http": validator}
        return {"sha256": self.checksum}

    def renamed(self, name: str) -> FileRef:
        return FileRef(name, self.uri, self.checksum, self.size, self.deferred, self.placed)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uri": self.uri, "checksum": self.checksum, "size": self.size}


def safe_name(input_name: str, name: str) -> str:
    """A file name inside an input folder: relative, no ``..``; anything else is refused."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise InputError(input_name, f"file name {name!r} would leave the input folder; refused")
    return str(path)


def _glob_root(pattern: str) -> str:
    """The folders of ``pattern`` before its first wildcard (Valohai's "wildcard root")."""
    literal: list[str] = []
    for part in PurePosixPath(pattern).parts[:-1]:
        if any(ch in part for ch in "*?["):
            break
        literal.append(part)
    return str(PurePosixPath(*literal)) if literal else ""


def placed_name(spec: Input, source_name: str, pattern: str | None) -> str:
    """Where a file lands inside the input folder, per the input's ``keep-directories``: ``none``
    (the default) its base name, ``full`` its whole path, ``suffix`` its path below the pattern's
    wildcard root (``source_name`` is already relative to it where no pattern is given)."""
    if spec.keep_directories is KeepDirectories.FULL:
        return source_name
    if spec.keep_directories is KeepDirectories.SUFFIX:
        root = _glob_root(pattern) if pattern else ""
        return posixpath.relpath(source_name, root) if root else source_name
    return posixpath.basename(source_name)


def _local_refs(spec: Input, value: str, repository: Path) -> list[FileRef]:
    parsed = urlparse(value)
    raw = str(file_uri_path(value)) if parsed.scheme == "file" else value
    path = raw if os.path.isabs(raw) else str(repository / raw)
    matches = sorted(glob.glob(path, recursive=True)) if glob.has_magic(path) else [path]
    files = [m for m in matches if os.path.isfile(m)]
    if not files:
        raise InputError(spec.name, f"{value!r} names no file (looked for {path})")
    root = os.path.dirname(path.split("*", 1)[0]) if glob.has_magic(path) else os.path.dirname(path)
    return [FileRef(placed_name(spec, os.path.relpath(f, root), None), Path(f).as_uri()) for f in files]


def default_refs(spec: Input, values: Iterable[str], repository: Path) -> list[FileRef]:
    """Files named by an input's default URIs (or node/run settings): local paths and http(s)."""
    refs: list[FileRef] = []
    for value in values:
        scheme = urlparse(value).scheme
        if scheme in ("http", "https", "s3"):
            name = posixpath.basename(unquote(urlparse(value).path)) or "download"
            refs.append(FileRef(placed_name(spec, name, None), value))
        elif scheme in ("", "file"):
            refs.extend(_local_refs(spec, value, repository))
        else:
            raise InputError(spec.name, f"URI {value!r}: scheme {scheme!r} is not supported here")
    return refs


def edge_refs(
    spec: Input, upstream: Iterable[Mapping[str, Any]], pattern: str | None, source: str = "upstream"
) -> list[FileRef]:
    """The upstream files an edge's glob selects (``pattern`` None: all of them, as an edge from
    an upstream input passes), with their recorded checksums. A glob that selects nothing is an
    error naming the files ``source`` published, unless the input is optional."""
    files = list(upstream)
    chosen = [item for item in files if pattern is None or glob_match(item["name"], pattern)]
    if pattern is not None and files and not chosen and not spec.optional:
        names = sorted(item["name"] for item in files)
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        raise InputError(
            spec.name, f"edge glob {pattern!r} selects none of the files {source} published: {shown}"
        )
    return [
        FileRef(placed_name(spec, item["name"], pattern), item["uri"], item.get("checksum"), item.get("size"))
        for item in chosen
    ]


def glob_match(name: str, pattern: str) -> bool:
    """Match a path relative to /valohai/outputs as Valohai matches an edge: the whole path against
    the pattern, ``*`` (and ``**``, ``?``) crossing folders: ``*best.pt`` selects
    ``train/weights/best.pt``, ``results/*.pkl`` every pickle below ``results/``."""
    return fnmatch.fnmatchcase(name, pattern)


def apply_filename(spec: Input, refs: list[FileRef]) -> list[FileRef]:
    if spec.filename and len(refs) == 1:
        return [refs[0].renamed(spec.filename)]
    return refs


def identify_file(
    input_name: str,
    ref: FileRef,
    folder: Path,
    stat_cache: StatCache,
    conn_id: str = "aws_default",
) -> FileRef:
    """One file's name and checksum, for the fingerprint; nothing is placed for the container yet.

    Local files are hashed where they are (an unchanged file costs a stat), object-store files are
    asked for their stored checksum, http(s) files for their server's validators (runtime/web.py);
    only http(s) files without usable validators are downloaded (into ``folder``) to be hashed.
    """
    name = safe_name(input_name, ref.name)
    if ref.checksum is not None:  # an upstream output or input: its recorded checksum
        # an upstream's http(s) input is not in the store: fetched (and checked) if this node runs
        web = urlparse(ref.uri).scheme in ("http", "https")
        return FileRef(name, ref.uri, ref.checksum, ref.size, deferred=web)
    scheme = urlparse(ref.uri).scheme
    if scheme == "file":
        sha256, size = cached_sha256(file_uri_path(ref.uri), stat_cache)
        return FileRef(name, ref.uri, sha256, size)
    if scheme == "s3":
        checksum, size, _strength = remote_checksum(conn_id, ref.uri, input_name)
        return FileRef(name, ref.uri, checksum, size, deferred=True)
    if scheme in ("http", "https"):
        checksum, size, downloaded = identify_http(input_name, ref.uri, folder / name)
        return FileRef(name, ref.uri, checksum, size, deferred=not downloaded, placed=downloaded)
    raise InputError(input_name, f"cannot fetch {ref.uri!r}")


def identify_input(
    spec: Input,
    refs: list[FileRef],
    inputs_dir: Path,
    stat_cache: StatCache,
    conn_id: str = "aws_default",
) -> list[FileRef]:
    """The files one input receives, by name, with their checksums."""
    folder = inputs_dir / spec.name
    identified: dict[str, FileRef] = {}
    for ref in apply_filename(spec, refs):
        item = identify_file(spec.name, ref, folder, stat_cache, conn_id)
        identified.pop(item.name, None)  # Valohai semantics: a later file of the same name wins
        identified[item.name] = item
    if not identified and not spec.optional:
        raise InputError(
            spec.name, "has no files: give it a default URI, wire an edge to it, or mark it optional"
        )
    return [identified[name] for name in sorted(identified)]


def temporary_dir(parent: Path, prefix: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
