"""Keeping the cache honest over time: invalidation and garbage collection."""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.lease import Leases
from airflow_valohai_reuse.contracts import ArtifactStore

GC_BY = "valohai-reuse gc"


@dataclass
class GcReport:
    invalidated: list[str] = field(default_factory=list)  # entries whose outputs are gone
    deleted: list[str] = field(default_factory=list)  # artifacts no live entry refers to
    freed_bytes: int = 0
    stale_leases: int = 0  # leases of dead workers, expired for longer than the minimum age


def collect(cache: ExecutionCache, store: ArtifactStore, *, dry_run: bool, min_age_s: float) -> GcReport:
    """Invalidate entries whose outputs are gone, then delete artifacts no live entry refers to.

    Artifacts younger than ``min_age_s`` stay: a running node stores its outputs before it
    records its entry.
    """
    report = GcReport()
    live = cache.entries()
    for entry in live:
        gone = [o.name for o in entry.outputs if not store.exists(o.uri, o.size, o.checksum)]
        if gone:
            report.invalidated.append(entry.id)
            if not dry_run:
                cache.invalidate(
                    [entry.id], by=GC_BY, reason=f"outputs gone from the store: {', '.join(gone)}"
                )
    store.flush()
    referenced = {o.uri for e in live if e.id not in report.invalidated for o in e.outputs}
    for uri, size in store.blobs(min_age_s):
        if uri not in referenced:
            report.deleted.append(uri)
            report.freed_bytes += size
            if not dry_run:
                store.delete(uri)
    if not dry_run:
        report.stale_leases = Leases(cache.engine, 0).purge(min_age_s)
    return report
