"""What the parts ask of the execution cache (by facet) and of an artifact store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the cache's and the fingerprint's own types, named by the protocols below
    from airflow_valohai_reuse.cache.lease import Held, Leases
    from airflow_valohai_reuse.fingerprint.checksums import StatCache

from airflow_valohai_reuse.contracts.ledger import Entry, Ledger, RunNode, TaskKey
from airflow_valohai_reuse.contracts.manifest import KeptOutputs
from airflow_valohai_reuse.contracts.records import Execution


# -- the execution cache as a task sees it, by facet (cache/failopen.py) ----------------------------
class ExecutionLookup(Protocol):
    """Finding recorded executions."""

    def lookup(self, fingerprint: str) -> Execution | None: ...
    def resolve(self, given: str) -> str: ...
    def get(self, execution_id: str) -> Execution | None: ...
    def nearest(self, step: str) -> Execution | None: ...


class Recorder(Protocol):
    """Recording executions and the run ledger's rows."""

    def record(self, execution: Execution, entry: Entry | None = None) -> bool: ...
    def publish(self, entry: Entry) -> None: ...
    def forget(self, key: TaskKey) -> None: ...


class LedgerReader(Protocol):
    """Reading what the task instances of a run published."""

    def published(self, dag_id: str, run_id: str, task_ids: list[str]) -> Ledger | None: ...
    def outputs_of(self, execution_ids: list[str]) -> KeptOutputs | None: ...
    def run_nodes(self, dag_id: str, run_id: str) -> list[RunNode] | None: ...


class LeaseSource(Protocol):
    """The single-flight leases."""

    def running(self, fingerprint: str) -> Held | None: ...
    def leases(self, seconds: float) -> Leases | None: ...


class StatSource(Protocol):
    """The checksums kept of files, so that an unchanged file is not read again."""

    def project_stats(self, folder: str) -> StatCache: ...
    def blob_digests(self) -> StatCache: ...


class Cache(ExecutionLookup, Recorder, LedgerReader, LeaseSource, StatSource, Protocol):
    """What a node task asks of the execution cache."""

    url: str


# -- the artifact store (stores/) -----------------------------------------------------------------
class ArtifactStore(Protocol):
    """An artifact store: content-addressed, immutable (stores/, chosen by the URI's scheme)."""

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
