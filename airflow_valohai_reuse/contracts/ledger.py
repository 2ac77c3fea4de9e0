"""The run ledger's and the leases' records: a task instance's key, the row of what it published, a
run's node rows (``reuse_from_run``), a lease's owner; dicts only at the SQL and JSON edges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from airflow_valohai_reuse.contracts.records import Kind, Published


@dataclass(frozen=True)
class TaskKey:
    """One task instance of one DAG run: the run ledger's key."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1


@dataclass(frozen=True)
class Entry:
    """A run ledger row: a task instance and what it published."""

    key: TaskKey
    published: Published
    try_number: int | None = None
    pipeline: str | None = None
    #: reused or pinned: the compute time saved (the source execution's duration)
    saved_s: float | None = None
    #: ran: why it was not reused
    reason: str | None = None


@dataclass(frozen=True)
class RunNode:
    """What one node of a DAG run published, as its run ledger row says (``reuse_from_run``)."""

    node: str
    map_index: int
    kind: Kind
    execution_id: str


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds a single-flight lease, for the waiting side's log: never more than task
    coordinates and where the worker runs. What is not known is None (a lease taken outside a task)."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    #: the name Airflow gives the worker, as its UI shows it
    hostname: str | None = None
    pid: int | None = None

    @classmethod
    def of(cls, key: TaskKey, hostname: str, pid: int) -> LeaseOwner:
        return cls(key.dag_id, key.run_id, key.task_id, key.map_index, hostname, pid)

    def describe(self) -> str:
        """``dag/run/task[map index] on host (pid N)``, the words the waiting side logs."""
        place = f"{self.dag_id}/{self.run_id}/{self.task_id}"
        if self.map_index not in (-1, None):
            place += f"[{self.map_index}]"
        return f"{place} on {self.hostname} (pid {self.pid})"

    def as_dict(self) -> dict[str, Any]:
        """The JSON the lease row keeps: what is known."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: Any) -> LeaseOwner:
        """The owner a lease row names; what it lacks (or a row that names none) is not known."""
        if not isinstance(data, Mapping):
            return cls()
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


#: task id → what its instances published, by map index
Ledger = dict[str, list[Published]]
