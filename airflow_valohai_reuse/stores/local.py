"""The local artifact store: blobs under a folder, content-addressed and read-only once written."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from airflow_valohai_reuse.errors import StoreError
from airflow_valohai_reuse.fingerprint.checksums import (
    FileStat,
    NoStatCache,
    StatCache,
    cached_digest,
    cached_sha256,
    stat_seal,
)
from airflow_valohai_reuse.stores.base import file_uri_path, link_or_copy

#: the fewest outputs whose verification is sealed (fewer cost no more checked one by one)
SEALED_FROM = 8


class LocalStore:
    """Blobs under ``root/sha256/<ab>/<sha256>``, read-only once written.

    ``digests`` remembers each blob's checksum under its stat, so verifying a blob costs a stat
    unless the file changed since it was last hashed.
    """

    scheme = "file"

    def __init__(self, root: Path, digests: StatCache | None = None) -> None:
        self.root = root
        self.digests = digests or NoStatCache()

    @classmethod
    def from_uri(cls, uri: str, digests: StatCache | None = None) -> LocalStore:
        return cls(file_uri_path(uri), digests)

    def _blob(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def put(self, local_path: Path, sha256: str, size: int) -> str:
        blob = self._blob(sha256)
        if self.exists(blob.as_uri(), size, sha256):
            local_path.unlink()
            return blob.as_uri()
        blob.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp = tempfile.mkstemp(dir=blob.parent, prefix=".incoming-")
            os.close(fd)
            try:
                os.replace(local_path, tmp)  # a rename when on the same filesystem
            except OSError:
                shutil.copyfile(local_path, tmp)
                local_path.unlink()
            os.chmod(tmp, 0o444)
            os.replace(tmp, blob)
            self.digests.put(str(blob), FileStat.of(blob), sha256)
        except OSError as exc:
            raise StoreError(f"cannot store {local_path} in {self.root}: {exc}") from exc
        return blob.as_uri()

    def exists(self, uri: str, size: int, sha256: str | None = None) -> bool:
        """There with this size and, when ``sha256`` is given, these bytes (hashed again only when
        the blob's stat changed since it was last hashed)."""
        try:
            path = file_uri_path(uri)
            if path.stat().st_size != size:
                return False
            return sha256 is None or cached_sha256(path, self.digests, resolved=True)[0] == sha256
        except (OSError, StoreError):
            return False

    def exists_all(self, checks: Sequence[tuple[str, int, str | None]]) -> list[bool]:
        """:meth:`exists` of each (URI, size, sha256), at one stat each and one query: where every
        blob's stat is as it was when all were last confirmed (their kept seal), all are there;
        otherwise the blobs' kept checksums are read at once and each is checked (hashed again only
        where its stat changed), and a full confirmation is sealed for the next time."""
        paths = [_blob_path(uri) for uri, _size, _sha256 in checks]
        seal = self._seal(paths, checks)
        if seal is not None and self.digests.sealed(seal):
            return [True] * len(checks)
        self.digests.prefetch([p for p in paths if p])
        found = [
            self._there(path, size, sha256) for path, (_uri, size, sha256) in zip(paths, checks, strict=True)
        ]
        if seal is not None and all(found):
            self.digests.flush()  # the checksums hashed again are kept before the seal that relies on them
            self.digests.keep_seal(seal)
        return found

    @staticmethod
    def _seal(paths: list[str | None], checks: Sequence[tuple[str, int, str | None]]) -> str | None:
        """The blobs' :func:`stat_seal` now; None where one is missing or not checked by its checksum."""
        if len(checks) < SEALED_FROM or any(p is None for p in paths) or any(c[2] is None for c in checks):
            return None
        try:
            stats = [os.stat(p) for p in paths]  # type: ignore[arg-type]
        except OSError:
            return None
        files = [(p, size, sha256) for p, (_uri, size, sha256) in zip(paths, checks, strict=True)]
        return stat_seal(files, stats)  # type: ignore[arg-type]

    def _there(self, path: str | None, size: int, sha256: str | None) -> bool:
        if path is None:
            return False
        try:
            digest, stat = (
                cached_digest(path, self.digests, resolved=True) if sha256 else (None, os.stat(path))
            )
        except OSError:
            return False
        return stat.st_size == size and (sha256 is None or digest == sha256)

    def blobs(self, older_than_s: float) -> Iterator[tuple[str, int]]:
        return _blobs(self.root, older_than_s)

    def delete(self, uri: str) -> None:
        file_uri_path(uri).unlink(missing_ok=True)

    def owns(self, uri: str) -> bool:
        try:
            return file_uri_path(uri).is_relative_to(self.root / "sha256")
        except StoreError:
            return False

    def flush(self) -> None:
        self.digests.flush()

    def get(self, uri: str, dst: Path) -> None:
        link_or_copy(file_uri_path(uri), dst)


def _blob_path(uri: str) -> str | None:
    """The path of a ``file://`` URI as this store writes them (no escapes: a quick slice), else as
    any file URI is read; None for a URI that is not a local file's."""
    if uri.startswith("file:///") and "%" not in uri:
        return uri[len("file://") :]
    try:
        return str(file_uri_path(uri))
    except StoreError:
        return None


def _blobs(root: Path, older_than_s: float) -> Iterator[tuple[str, int]]:
    limit = time.time() - older_than_s
    for blob in sorted((root / "sha256").glob("??/*")):
        if blob.name.startswith("."):
            continue  # a write in progress
        stat = blob.stat()
        if stat.st_mtime < limit:
            yield blob.as_uri(), stat.st_size
