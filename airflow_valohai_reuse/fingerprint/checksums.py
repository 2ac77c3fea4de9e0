"""Content checksums of local files, with a stat cache so unchanged files are not read again, and the
rule that lets an http(s) server's validators stand for a file's content."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileStat:
    """What must be unchanged for a cached checksum to stand: inode, size and both times."""

    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileStat:
        return cls.from_stat(os.stat(path))

    @classmethod
    def from_stat(cls, st: os.stat_result) -> FileStat:
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class StatCache(Protocol):
    def get(self, path: str, stat: FileStat) -> str | None: ...

    def put(self, path: str, stat: FileStat, sha256: str) -> None: ...

    def flush(self) -> None:
        """Make what was put durable."""
        ...

    def prefetch(self, paths: Collection[str]) -> None:
        """Read what is kept of these paths at once, before each is asked (a hint)."""
        ...

    def sealed(self, seal: str) -> bool:
        """Whether ``seal`` (:func:`stat_seal` of files whose checksums were all confirmed) is kept."""
        ...

    def keep_seal(self, seal: str) -> None:
        """Keep ``seal``: those files, while every stat is unchanged, have the checksums it names."""
        ...


class NoStatCache:
    """Reads every file every time."""

    def get(self, path: str, stat: FileStat) -> str | None:
        return None

    def prefetch(self, paths: Collection[str]) -> None:
        return None

    def put(self, path: str, stat: FileStat, sha256: str) -> None:
        return None

    def flush(self) -> None:
        return None

    def sealed(self, seal: str) -> bool:
        return False

    def keep_seal(self, seal: str) -> None:
        return None


def stat_seal(files: Sequence[tuple[str, int, str | None]], stats: Sequence[os.stat_result]) -> str:
    """One checksum of many files' (path, expected size and sha256) and their stats now: equal to a
    kept seal only while every one of those files is where it was, with the same inode, size and
    times, so the checksums confirmed when it was kept still stand (as :class:`FileStat` does for one)."""
    digest = hashlib.sha256()
    for (path, size, sha256), st in zip(files, stats, strict=True):
        digest.update(
            f"{path}\0{size}\0{sha256}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode(
                "utf-8", "surrogateescape"
            )
        )
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def cached_sha256(
    path: str | os.PathLike[str], cache: StatCache, *, resolved: bool = False
) -> tuple[str, int]:
    """(sha256, size) of a file, read only when its stat differs from the cached one.

    ``resolved``: the path is already absolute and free of links (saves a realpath per file).
    """
    value, stat = cached_digest(path, cache, resolved=resolved)
    return value, stat.st_size


def cached_digest(
    path: str | os.PathLike[str], cache: StatCache, *, resolved: bool = False
) -> tuple[str, os.stat_result]:
    """(sha256, the stat it belongs to): the mode and size come with the checksum, one stat call."""
    key = str(path) if resolved else str(Path(path).resolve())
    raw = os.stat(key)
    before = FileStat.from_stat(raw)
    known = cache.get(key, before)
    if known is not None:
        return known, raw
    value = sha256_file(key)
    # A file written while it was read must not be cached under its old stat.
    if FileStat.of(key) == before:
        cache.put(key, before, value)
    return value, raw


def copy_and_hash(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], mode: int | None = None
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` in one pass and return the checksum of the bytes written.

    ``mode``: the permission bits ``dst`` gets (``src``'s when not given).
    """
    with open(src, "rb") as reader:
        result = stream_and_hash(reader, dst)
    if mode is None:
        shutil.copymode(src, dst)
    else:
        os.chmod(dst, mode)
    return result


def stream_and_hash(reader: object, dst: str | os.PathLike[str]) -> tuple[str, int]:
    """Write a readable stream to ``dst`` while hashing it."""
    hasher = hashlib.sha256()
    size = 0
    with open(dst, "wb") as writer:
        while chunk := reader.read(_CHUNK):  # type: ignore[attr-defined]
            hasher.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


#: how long before the server's ``Date`` a file must have last changed for its validators to stand
#: (RFC 9110, 8.8.2.2: a client may take a Last-Modified as strong when it is at least 60 s older)
SETTLED = timedelta(seconds=60)
#: the prefix of an http(s) file's checksum when its server's validators identify it
HTTP_PREFIX = "http:"


def _when(value: str | None) -> Any:
    try:
        return parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None


def _size(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


#: query parameters of a signed URL (S3, GCS, Azure): such a URL changes with each signing, so only the
#: file's bytes can tell that two of them name the same file
SIGNATURE_PARAMETERS = frozenset({"x-amz-signature", "x-goog-signature", "signature", "sig"})


def _resource(url: str) -> dict[str, str] | None:
    """The URL as the identity keeps it: credentials and the query only as a digest (they may hold a
    token, which must not be shown where fingerprints are); None for a signed URL."""
    parts = urlsplit(url)
    if {name.lower() for name, _ in parse_qsl(parts.query, keep_blank_values=True)} & SIGNATURE_PARAMETERS:
        return None
    host = parts.hostname or ""
    public = urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""), parts.path, "", ""))
    private = f"{parts.username or ''}:{parts.password or ''}?{parts.query}"
    if private == ":?":
        return {"url": public}
    return {"url": public, "private_sha256": hashlib.sha256(private.encode()).hexdigest()}


def http_validator(url: str, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """What identifies an http(s) file without its bytes, or None where only its bytes can.

    The conservative rule: never for an encoded body (``Content-Encoding``), a weak ETag (``W/``) or
    a file that the server says changed less than :data:`SETTLED` before it answered (a strong ETag
    computed from a one-second modification time and the size, as nginx's is, could then miss a
    change) nor for a signed URL (a new one each time: its bytes are what stays); otherwise a strong
    ETag, or else a settled ``Last-Modified`` with a ``Content-Length``. The URL the answer came from
    (after redirects) is part of it, a validator meaning something only for its own resource; its
    credentials and query only as a digest.
    """
    resource = _resource(url)
    if resource is None or headers.get("Content-Encoding", "identity").strip().lower() not in (
        "",
        "identity",
    ):
        return None
    modified, sent = _when(headers.get("Last-Modified")), _when(headers.get("Date"))
    settled = modified is not None and sent is not None and sent - modified >= SETTLED
    if headers.get("Last-Modified") is not None and not settled:
        return None
    size = _size(headers.get("Content-Length"))
    etag = (headers.get("ETag") or "").strip()
    if etag.startswith("W/"):
        return None  # the server itself says equal bytes are not promised
    if etag:
        return {**resource, "etag": etag, "size": size}
    if settled and size is not None:
        return {**resource, "last_modified": modified.isoformat(), "size": size}
    return None


def http_checksum(validator: Mapping[str, Any]) -> str:
    """The checksum an http(s) file identified by its validators travels with (XCom, cache, edges)."""
    return HTTP_PREFIX + json.dumps(dict(validator), sort_keys=True, separators=(",", ":"))


def http_validator_of(checksum: str) -> dict[str, Any] | None:
    """The validator inside an :func:`http_checksum`; None for any other checksum."""
    if not checksum.startswith(HTTP_PREFIX):
        return None
    value = json.loads(checksum.removeprefix(HTTP_PREFIX))
    return value if isinstance(value, dict) else None
