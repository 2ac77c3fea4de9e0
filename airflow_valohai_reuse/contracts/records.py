"""The records that travel between the parts: an output, an execution, a published result, what a
node reads of an upstream, the ledger's key and row, a lease's owner. Dicts only at the XCom, SQL and
JSON edges (``as_xcom``/``from_xcom``, ``as_dict``/``from_dict``).

One name per concept from the container to the downstream input: an output's ``checksum`` is the
sha256 the store verifies (or ``etag:…`` for an object-store input the store keeps no sha256 of).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from airflow_valohai_reuse.errors import OutputError


@dataclass(frozen=True)
class Output:
    """One file a node wrote under /valohai/outputs, as kept in the artifact store."""

    name: str
    uri: str
    size: int
    checksum: str
    #: the file's properties as Valohai reads them (a ``<file>.metadata.json`` sidecar, lines of
    #: ``valohai.metadata.jsonl``); not part of the file's identity
    properties: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def as_dict(self) -> dict[str, Any]:
        """The XCom and cache shape; ``properties`` only where there are some, so an output without
        any has the shape it always had."""
        found = {"name": self.name, "uri": self.uri, "size": self.size, "checksum": self.checksum}
        if self.properties:
            found["properties"] = self.properties
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Output:
        properties = data.get("properties")
        return cls(
            data["name"],
            data["uri"],
            int(data["size"]),
            data["checksum"],
            dict(properties) if isinstance(properties, dict) else {},
        )


@dataclass
class Execution:
    """A successful execution: what determined it, what it produced, and where it ran."""

    id: str
    fingerprint: str
    fingerprint_version: int
    step: str
    components: dict[str, Any]
    outputs: list[Output]
    #: effective parameter values (secret-named ones left out), inputs as files, public variables
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    #: what the step printed as JSON lines (Valohai metadata): the last value of each key
    metadata: dict[str, Any] = field(default_factory=dict)
    #: the values of each key printed more than once, in order (bounded: runtime/outputs.py)
    metadata_series: dict[str, list[Any]] = field(default_factory=dict)
    pipeline: str | None = None
    node: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    expires_at: datetime | None = None
    invalidated_at: datetime | None = None
    invalidated_by: str | None = None
    invalidation_reason: str | None = None

    def details(self) -> dict[str, Any]:
        """What the cache keeps of the run besides its fingerprint and outputs."""
        return {name: getattr(self, name) for name in ("parameters", "inputs", "environment", "metadata")}


class Kind(StrEnum):
    """How a task instance came by the execution it published."""

    RAN = "ran"
    REUSED = "reused"
    PINNED = "pinned"

    @property
    def reused(self) -> bool:
        """Taken from an earlier execution (found by its fingerprint, or pinned) rather than run."""
        return self is not Kind.RAN


#: the ledger's ``kind`` values of reused task instances, for SQL filters
REUSED_KINDS = tuple(kind.value for kind in Kind if kind.reused)


@dataclass(frozen=True)
class Published:
    """What a node task hands downstream: the ``valohai_execution`` XCom and the run ledger's row."""

    execution_id: str
    kind: Kind
    fingerprint: str
    outputs: list[Output]
    parameters: dict[str, Any]
    inputs: dict[str, list[dict[str, Any]]]
    environment: dict[str, str]
    metadata: dict[str, Any]
    step: str
    node: str

    @classmethod
    def of(cls, execution: Execution, kind: Kind, node: str, run: dict[str, Any] | None = None) -> Published:
        """``run``: this run's parameters, inputs and environment, which a reused execution's record
        may state differently (names of files, values left out); the execution's otherwise."""
        details = {**execution.details(), **(run or {})}
        return cls(
            execution.id,
            kind,
            execution.fingerprint,
            list(execution.outputs),
            details["parameters"],
            details["inputs"],
            details["environment"],
            execution.metadata,
            execution.step,
            node,
        )

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> Published:
        """The record of a value :meth:`as_xcom` made (the run ledger keeps it as JSON)."""
        return cls(
            execution_id=data["execution_id"],
            kind=Kind(data["kind"]),
            fingerprint=data["fingerprint"],
            outputs=[Output.from_dict(o) for o in data["outputs"]],
            parameters=data["parameters"],
            inputs=data["inputs"],
            environment=data["environment"],
            metadata=data["metadata"],
            step=data["step"],
            node=data["node"],
        )

    def as_xcom(self) -> dict[str, Any]:
        """The documented XCom value (README, "XCom")."""
        reused = self.kind.reused
        return {
            "execution_id": self.execution_id,
            "reused": reused,
            "reused_from": self.execution_id if reused else None,
            "fingerprint": self.fingerprint,
            "outputs": [o.as_dict() for o in self.outputs],
            "parameters": self.parameters,
            "inputs": self.inputs,
            "environment": self.environment,
            "metadata": self.metadata,
            "step": self.step,
            "node": self.node,
            "kind": self.kind.value,
        }

    def check_publishable(self) -> None:
        """Refuse, before anything is recorded, a result that could not be pushed as an XCom: an
        entry that every later run would reuse and fail to publish would poison the cache."""
        try:
            json.dumps(self.as_xcom(), ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            problem = f"the result of execution {self.execution_id} cannot be published: {exc}"
            raise OutputError(problem) from None


@dataclass(frozen=True)
class Upstream:
    """What a node reads from one upstream task: a node's published result, a task node's variants
    merged, or nothing (an upstream whose failure the pipeline tolerates)."""

    execution_ids: tuple[str, ...] = ()
    outputs: list[Output] = field(default_factory=list)
    inputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, published: Published) -> Upstream:
        return cls(
            (published.execution_id,),
            list(published.outputs),
            published.inputs,
            published.parameters,
            published.metadata,
            published.environment,
        )

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> Upstream:
        """A node's ``valohai_execution`` XCom; what it lacks reads as nothing."""
        execution_id = value.get("execution_id")
        return cls(
            (execution_id,) if execution_id else (),
            [Output.from_dict(o) for o in value.get("outputs", [])],
            dict(value.get("inputs", {})),
            dict(value.get("parameters", {})),
            dict(value.get("metadata", {})),
            dict(value.get("environment", {})),
        )

    @classmethod
    def merged(cls, variants: Sequence[Upstream]) -> Upstream:
        """A task node's variants as one upstream: outputs and inputs concatenated, as Valohai passes
        all of a task's outputs to the next node; parameters, metadata and environment differ per
        variant, so none are passed on."""
        inputs: dict[str, list[dict[str, Any]]] = {}
        for variant in variants:
            for name, refs in variant.inputs.items():
                inputs.setdefault(name, []).extend(refs)
        return cls(
            tuple(i for v in variants for i in v.execution_ids),
            [o for v in variants for o in v.outputs],
            inputs,
        )


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
