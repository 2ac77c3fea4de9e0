"""The reuse decision, made once for a run and for a plan: Hit, Miss or Wait (Pinned comes before it).

A run claims the single-flight lease as part of deciding (its ``flight``); a plan only looks at it.
Either way the answer comes from this one function, so ``valohai-reuse plan`` cannot disagree with a
run about the same fingerprint.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from airflow_valohai_reuse.cache.lease import Flight, Held
from airflow_valohai_reuse.contracts import ArtifactStore, Cache, Execution, ExecutionLookup, Kind
from airflow_valohai_reuse.fingerprint.components import Fingerprint, describe, diff
from airflow_valohai_reuse.reuse.resolve import Resolved
from airflow_valohai_reuse.stores.base import verify_all

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    """An identical successful execution with every output still in the store."""

    execution: Execution


@dataclass(frozen=True)
class Pinned:
    """``reuse_nodes`` names the execution this node publishes, whatever its fingerprint."""

    execution: Execution


@dataclass(frozen=True)
class Miss:
    """The node runs: why, in words, and the nearest execution it was compared with."""

    reason: str
    nearest: Execution | None = None


@dataclass(frozen=True)
class Wait:
    """An identical execution is running elsewhere: wait for it and reuse it."""

    holder: Held


Decision = Hit | Pinned | Miss | Wait

#: why a node runs when the run's reuse_executions is off
REUSE_OFF = "reuse_executions is off"


def reuse_line(kind: Kind, execution: Execution) -> str:
    """The log line of a node that publishes an earlier execution, on a worker or in the triggerer:
    ``REUSED execution <id> from <dag>/<run>/<task> (time saved: 1.5 s)``."""
    saved = f"{execution.duration_s:.1f} s" if execution.duration_s is not None else "unknown"
    where = f"{execution.dag_id}/{execution.run_id}/{execution.task_id}"
    return f"{kind.value.upper()} execution {execution.id} from {where} (time saved: {saved})"


def pinned(node: str, pins: Mapping[str, Execution]) -> Pinned | None:
    return Pinned(pins[node]) if node in pins else None


def decide(
    resolved: Resolved,
    *,
    step: str,
    reuse: bool,
    cache: Cache,
    store: ArtifactStore,
    flight: Flight | None = None,
    logger: logging.Logger = log,
) -> Hit | Miss | Wait:
    """Reuse, run or wait. ``flight``: the run's lease to claim; without one (a plan) the lease is
    only looked at."""
    fingerprint = resolved.fingerprint
    if not reuse:
        return Miss(REUSE_OFF)
    hit = find_reusable(cache, store, fingerprint, logger)
    if hit is not None:
        return Hit(hit)
    reason, nearest = miss_reason(cache, step, fingerprint)
    held = cache.running(fingerprint.digest) if flight is None else flight.claim()
    if held is not None:
        return Wait(held)
    if flight is not None:
        # it may have been recorded between the lookup and the claim
        hit = find_reusable(cache, store, fingerprint, logger)
        if hit is not None:
            return Hit(hit)
    return Miss(reason, nearest)


def find_reusable(
    cache: ExecutionLookup, store: ArtifactStore, fingerprint: Fingerprint, logger: logging.Logger = log
) -> Execution | None:
    """The newest successful execution with this fingerprint whose outputs are all still stored."""
    hit = cache.lookup(fingerprint.digest)
    if hit is None:
        return None
    there = verify_all(store, [(o.uri, o.size, o.checksum) for o in hit.outputs])
    missing = [o.name for o, found in zip(hit.outputs, there, strict=True) if not found]
    store.flush()
    if missing:
        logger.warning(
            "not reusing execution %s: outputs missing or changed in the store: %s; running again",
            hit.id,
            ", ".join(missing),
        )
        return None
    return hit


def miss_reason(cache: ExecutionLookup, step: str, fingerprint: Fingerprint) -> tuple[str, Execution | None]:
    """Why nothing matched, in words, against the newest execution of the same step."""
    nearest = cache.nearest(step)
    if nearest is None:
        return f"no earlier successful execution of step {step!r}", None
    return describe(diff(nearest.components, dict(fingerprint.components))), nearest
