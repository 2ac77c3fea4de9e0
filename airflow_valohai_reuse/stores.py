"""Artifact stores: content-addressed, immutable, chosen by the URI's scheme."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from airflow_valohai_reuse.checksums import FileStat, NoStatCache, StatCache, cached_sha256
from airflow_valohai_reuse.errors import StoreError


class ArtifactStore(Protocol):
    scheme: str

    def put(self, local_path: Path, sha256: str, size: int) -> str:
        """Keep the file (it may be moved away) and return its immutable URI."""
        ...

    def exists(self, uri: str, size: int, sha256: str | None = None) -> bool:
        """The artifact is there with this size (and, where the store can tell, this checksum)."""
        ...

    def get(self, uri: str, dst: Path) -> None:
        """Materialise the artifact at ``dst`` (a hard link where the filesystem allows)."""
        ...

    def blobs(self, older_than_s: float) -> Iterator[tuple[str, int]]:
        """(URI, size) of every stored artifact last written more than ``older_than_s`` ago."""
        ...

    def delete(self, uri: str) -> None: ...

    def owns(self, uri: str) -> bool:
        """The URI names one of this store's (immutable) artifacts."""
        ...

    def flush(self) -> None:
        """Make the store's own bookkeeping (checksums it learned) durable."""
        ...


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


def _blobs(root: Path, older_than_s: float) -> Iterator[tuple[str, int]]:
    limit = time.time() - older_than_s
    for blob in sorted((root / "sha256").glob("??/*")):
        if blob.name.startswith("."):
            continue  # a write in progress
        stat = blob.stat()
        if stat.st_mtime < limit:
            yield blob.as_uri(), stat.st_size


def open_store(uri: str, conn_id: str = "aws_default", digests: StatCache | None = None) -> ArtifactStore:
    """The store for a URI such as ``file:///var/artifacts`` or ``s3://bucket/prefix``.

    ``digests``: a stat cache that spares a local store re-reading unchanged blobs to verify them.
    """
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return LocalStore.from_uri(uri, digests)
    if scheme == "s3":
        from airflow_valohai_reuse.s3 import S3Store  # the only place that needs the Amazon provider

        return S3Store(uri, conn_id)
    raise StoreError(f"artifact_store {uri!r}: scheme {scheme!r} is not supported (use file:// or s3://)")
