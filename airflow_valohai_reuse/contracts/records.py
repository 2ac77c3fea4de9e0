"""The records that travel between the parts: an output, an execution, a published result, what a
node reads of an upstream (the run ledger's and the leases' are in ledger.py). Dicts only at the XCom, SQL and
JSON edges (``as_xcom``/``from_xcom``, ``as_dict``/``from_dict``).

One name per concept from the container to the downstream input: an output's ``checksum`` is the
sha256 the store verifies (or ``etag:…`` for an object-store input the store keeps no sha256 of).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from airflow_valohai_reuse.contracts.manifest import (
    INLINE_OUTPUTS,
    MANIFEST_KEY,
    outputs_text,
    refuse_unread,
    text_checksum,
)
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
    #: the sha256 of the output list as the cache database keeps it (:func:`outputs_text`), where read
    #: from there: what a published value referencing the outputs names
    outputs_sha256: str | None = field(default=None, compare=False, repr=False)

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
    #: the execution's :attr:`Execution.outputs_sha256`, where known (computed otherwise)
    outputs_sha256: str | None = field(default=None, compare=False, repr=False)

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
            execution.outputs_sha256,
        )

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> Published:
        """The record of a value :meth:`as_xcom` made (the run ledger keeps it as JSON), its referenced
        outputs in place (:func:`with_outputs`)."""
        refuse_unread(data)
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

    def as_xcom(self, recorded: bool = False) -> dict[str, Any]:
        """The documented XCom value (docs/valohai-yaml.md, "XCom and the run ledger"). ``recorded``:
        the cache database holds the execution's record, so more than :data:`INLINE_OUTPUTS` outputs
        are referenced there (``outputs_manifest``: execution id, count, sha256) instead of listed."""
        reused = self.kind.reused
        count = len(self.outputs)
        listed: dict[str, Any]
        if recorded and count > INLINE_OUTPUTS:
            checksum = self.outputs_sha256 or text_checksum(outputs_text([o.as_dict() for o in self.outputs]))
            listed = {MANIFEST_KEY: {"execution_id": self.execution_id, "count": count, "sha256": checksum}}
        else:
            listed = {"outputs": [o.as_dict() for o in self.outputs]}
        return {
            "execution_id": self.execution_id,
            "reused": reused,
            "reused_from": self.execution_id if reused else None,
            "fingerprint": self.fingerprint,
            **listed,
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
        """A node's ``valohai_execution`` XCom (its referenced outputs in place: :func:`with_outputs`);
        what it lacks reads as nothing."""
        refuse_unread(value)
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
