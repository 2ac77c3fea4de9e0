"""The cache as a task sees it: the first database error is one warning, and the task goes on without it.

A node never fails because the cache database is down: it finds nothing, records nothing, waits for
no lease and reads its upstreams from XCom. :class:`FailOpenCache` turns the first error into that
behaviour for the rest of the task; :class:`NullCache` is it from the start (no database at all).
No caller checks which one it holds or catches a database error itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.lease import Held, Leases
from airflow_valohai_reuse.cache.statcache import BatchStatCache, DigestCache
from airflow_valohai_reuse.contracts import Cache, Entry, Execution, Ledger, RunNode, TaskKey
from airflow_valohai_reuse.contracts.manifest import KeptOutputs
from airflow_valohai_reuse.errors import first_line
from airflow_valohai_reuse.fingerprint.checksums import NoStatCache, StatCache

log = logging.getLogger(__name__)
T = TypeVar("T")


class NullCache:
    """No cache database: nothing found, nothing recorded, no leases, every file hashed."""

    url = "(unavailable)"

    def lookup(self, fingerprint: str) -> Execution | None:
        return None

    def resolve(self, given: str) -> str:
        return given

    def get(self, execution_id: str) -> Execution | None:
        return None

    def nearest(self, step: str) -> Execution | None:
        return None

    def record(self, execution: Execution, entry: Entry | None = None) -> bool:
        return False

    def publish(self, entry: Entry) -> None:
        return None

    def forget(self, key: TaskKey) -> None:
        return None

    def published(self, dag_id: str, run_id: str, task_ids: list[str]) -> Ledger | None:
        return None

    def outputs_of(self, execution_ids: list[str]) -> KeptOutputs | None:
        return None

    def run_nodes(self, dag_id: str, run_id: str) -> list[RunNode] | None:
        """None: the ledger cannot be read (an empty list: the run left no row)."""
        return None

    def running(self, fingerprint: str) -> Held | None:
        return None

    def leases(self, seconds: float) -> Leases | None:
        return None

    def project_stats(self, folder: str) -> StatCache:
        return NoStatCache()

    def blob_digests(self) -> StatCache:
        return NoStatCache()


class FailOpenCache(NullCache):
    """The real cache until its first database error, then a :class:`NullCache` for the task."""

    def __init__(self, cache: ExecutionCache, logger: logging.Logger = log) -> None:
        self.cache = cache
        self.url = cache.url
        self.log = logger
        self.down_since: datetime | None = None

    def _try(self, what: str, call: Callable[[], T], fallback: T) -> T:
        if self.down_since is not None:
            return fallback
        try:
            return call()
        except SQLAlchemyError as exc:
            self.down_since = datetime.now()
            cause = first_line(exc)
            self.log.warning(
                "execution cache unavailable (%s, while %s): this node finds nothing, records nothing "
                "and waits for no identical execution from now on",
                cause,
                what,
            )
            return fallback

    def lookup(self, fingerprint: str) -> Execution | None:
        return self._try("looking up an execution", lambda: self.cache.lookup(fingerprint), None)

    def resolve(self, given: str) -> str:
        return self._try(f"reading execution {given}", lambda: self.cache.resolve(given), given)

    def get(self, execution_id: str) -> Execution | None:
        return self._try(f"reading execution {execution_id}", lambda: self.cache.get(execution_id), None)

    def nearest(self, step: str) -> Execution | None:
        return self._try("reading the newest execution of the step", lambda: self.cache.nearest(step), None)

    def record(self, execution: Execution, entry: Entry | None = None) -> bool:
        def call() -> bool:
            self.cache.record(execution, entry)
            return True

        return self._try(f"recording execution {execution.id}", call, False)

    def publish(self, entry: Entry) -> None:
        self._try("writing the run ledger", lambda: self.cache.publish(entry), None)

    def forget(self, key: TaskKey) -> None:
        self._try("clearing the run ledger", lambda: self.cache.forget(key), None)

    def published(self, dag_id: str, run_id: str, task_ids: list[str]) -> Ledger | None:
        return self._try(
            "reading the run ledger", lambda: self.cache.published(dag_id, run_id, task_ids), None
        )

    def outputs_of(self, execution_ids: list[str]) -> KeptOutputs | None:
        return self._try("reading published outputs", lambda: self.cache.outputs_of(execution_ids), None)

    def run_nodes(self, dag_id: str, run_id: str) -> list[RunNode] | None:
        return self._try(
            f"reading the run ledger of run {run_id}", lambda: self.cache.run_nodes(dag_id, run_id), None
        )

    def running(self, fingerprint: str) -> Held | None:
        return self._try("reading leases", lambda: Leases(self.cache.engine, 0).current(fingerprint), None)

    def leases(self, seconds: float) -> Leases | None:
        return None if self.down_since is not None else Leases(self.cache.engine, seconds)

    def project_stats(self, folder: str) -> StatCache:
        return self._try(
            "reading file checksums", lambda: BatchStatCache(self.cache, [folder]), NoStatCache()
        )

    def blob_digests(self) -> StatCache:
        return NoStatCache() if self.down_since is not None else DigestCache(self.cache)


def open_cache(url: str, logger: logging.Logger = log) -> Cache:
    """The execution cache for a task, or a :class:`NullCache` when it cannot be opened."""
    try:
        return FailOpenCache(ExecutionCache(url), logger)
    except (SQLAlchemyError, ImportError) as exc:
        logger.warning(
            "execution cache unavailable (%s): the node runs and nothing is recorded", first_line(exc)
        )
        return NullCache()
