"""Stat caches kept in the cache database: a file's checksum, trusted while its stat is unchanged.

A failed read or write of these rows only costs hashing the file again; it never fails a task.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection

from sqlalchemy import Engine, Select, delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.schema import file_digests
from airflow_valohai_reuse.fingerprint.checksums import FileStat

_Key = tuple[int, int, int, int]
#: paths per query of :meth:`DigestCache.prefetch` (under SQLite's bound on a statement's variables)
PREFETCH_BATCH = 500
#: a seal's row is keyed ``seal:<sha256>``: never a path, which is absolute
SEAL_PREFIX = "seal:"


def _key(stat: FileStat) -> _Key:
    return (stat.inode, stat.size, stat.mtime_ns, stat.ctime_ns)


def _storable(path: str) -> bool:
    """A path the database can hold as text: a name that is not valid UTF-8 is hashed every time."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _StatRows:
    """Rows read on demand (``_load``), checksums put in memory and written in one transaction."""

    def __init__(self, cache: ExecutionCache) -> None:
        self.engine: Engine = cache.engine
        self.known: dict[str, tuple[_Key, str]] = {}
        self.pending: dict[str, tuple[FileStat, str]] = {}

    def _load(self, path: str) -> None:
        raise NotImplementedError

    def _read(self, query: Select) -> None:
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                self.known[row.path] = ((row.inode, row.size, row.mtime_ns, row.ctime_ns), row.sha256)

    def get(self, path: str, stat: FileStat) -> str | None:
        with contextlib.suppress(SQLAlchemyError, UnicodeError, ValueError):
            self._load(path)
        key, sha256 = self.known.get(path, (None, None))
        return sha256 if key == _key(stat) else None

    def put(self, path: str, stat: FileStat, sha256: str) -> None:
        self.known[path] = (_key(stat), sha256)
        if _storable(path):
            self.pending[path] = (stat, sha256)

    def prefetch(self, paths: Collection[str]) -> None:
        return None

    def sealed(self, seal: str) -> bool:
        key = SEAL_PREFIX + seal
        with contextlib.suppress(SQLAlchemyError, UnicodeError, ValueError):
            self._read(select(file_digests).where(file_digests.c.path == key))
        return self.known.get(key, (None, None))[1] == seal

    def keep_seal(self, seal: str) -> None:
        """Written at once (a row of its own; a concurrent writer of the same seal wins)."""
        row = {
            "path": SEAL_PREFIX + seal,
            "inode": 0,
            "size": 0,
            "mtime_ns": 0,
            "ctime_ns": 0,
            "sha256": seal,
        }
        with contextlib.suppress(SQLAlchemyError, UnicodeError, ValueError), self.engine.begin() as conn:
            conn.execute(delete(file_digests).where(file_digests.c.path == row["path"]))
            conn.execute(insert(file_digests), [row])

    def flush(self) -> None:
        """Replace the rows of the paths put since the last flush."""
        if not self.pending:
            return
        rows = [
            {"path": path, "inode": st.inode, "size": st.size, "mtime_ns": st.mtime_ns,
             "ctime_ns": st.ctime_ns, "sha256": sha256}
            for path, (st, sha256) in self.pending.items()
        ]  # fmt: skip
        with contextlib.suppress(SQLAlchemyError, UnicodeError, ValueError), self.engine.begin() as conn:
            conn.execute(delete(file_digests).where(file_digests.c.path.in_(list(self.pending))))
            conn.execute(insert(file_digests), rows)
        self.pending.clear()


class BatchStatCache(_StatRows):
    """For one node run's project files: each folder's rows read in one query."""

    def __init__(self, cache: ExecutionCache, folders: list[str]) -> None:
        super().__init__(cache)
        self.loaded: set[str] = set()
        for folder in folders:
            self._load_folder(folder)  # errors here reach the caller: it then reads every file

    def _load(self, path: str) -> None:
        self._load_folder(path.rsplit("/", 1)[0])

    def _load_folder(self, folder: str) -> None:
        prefix = folder.rstrip("/") + "/"
        if any(prefix.startswith(done) for done in self.loaded):
            return
        self._read(select(file_digests).where(file_digests.c.path.startswith(prefix, autoescape=True)))
        self.loaded.add(prefix)


class DigestCache(_StatRows):
    """For known paths (stored artifacts): one primary-key query each, or one query per
    :data:`PREFETCH_BATCH` paths that :meth:`prefetch` is given (an execution's outputs at once, so a
    hit's verification costs a few queries whatever its number of outputs)."""

    def __init__(self, cache: ExecutionCache) -> None:
        super().__init__(cache)
        self.looked_up: set[str] = set()

    def _load(self, path: str) -> None:
        if path not in self.looked_up:
            self._read(select(file_digests).where(file_digests.c.path == path))
            self.looked_up.add(path)

    def prefetch(self, paths: Collection[str]) -> None:
        wanted = sorted({p for p in paths if p not in self.looked_up and _storable(p)})
        with contextlib.suppress(SQLAlchemyError, UnicodeError, ValueError):
            for start in range(0, len(wanted), PREFETCH_BATCH):
                batch = wanted[start : start + PREFETCH_BATCH]
                self._read(select(file_digests).where(file_digests.c.path.in_(batch)))
                self.looked_up.update(batch)
