"""Content checksums of local files, with a stat cache so unchanged files are not read again."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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


class NoStatCache:
    """Reads every file every time."""

    def get(self, path: str, stat: FileStat) -> str | None:
        return None

    def put(self, path: str, stat: FileStat, sha256: str) -> None:
        return None

    def flush(self) -> None:
        return None


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
