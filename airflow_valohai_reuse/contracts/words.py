"""The words of the parts' protocols, as enums: a fingerprint change, an edge's source, a plan's
prediction, a wait's outcome."""

from __future__ import annotations

from enum import StrEnum


class ChangeKind(StrEnum):
    """How one value of a fingerprint differs from the one it is compared with."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


class SourceKind(StrEnum):
    """What an edge of valohai.yaml takes from its source node."""

    OUTPUT = "output"
    INPUT = "input"
    PARAMETER = "parameter"
    METADATA = "metadata"
    ENVIRONMENT = "environment-variable"


class PlanStatus(StrEnum):
    """What ``plan`` predicts for a node."""

    HIT = "hit"
    MISS = "miss"
    UNKNOWN = "unknown"  # it depends on what an upstream that runs will produce


class WaitState(StrEnum):
    """What a wait for an identical execution found (triggers/execution_done.py)."""

    RUNNING = "running"
    FINISHED = "finished"  # recorded: reuse it
    FREE = "free"  # its lease ended without a result: decide again
    ERROR = "error"  # the cache could not be read
