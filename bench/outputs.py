"""A hit's cost against its number of outputs: one output against 5,000, alternately.

A hit, as a node task makes it, on a PostgreSQL cache and a local store: the entry looked up, each
output verified in the store (a new task's DigestCache, so the kept checksums are read from the
database), the XCom value made and encoded, and the run ledger's row written.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

from bench.common import Options
from bench.hits import _database, _drop

MANY = 5000


def say(message: str) -> None:
    print(f"bench.outputs: {message}", file=sys.stderr, flush=True)


def _entry(url: str, root: Path, count: int) -> str:
    """An execution with ``count`` outputs, their blobs in the store; returns its fingerprint."""
    from airflow_valohai_reuse.cache.executions import ExecutionCache
    from airflow_valohai_reuse.cache.statcache import DigestCache
    from airflow_valohai_reuse.contracts import Execution, Output
    from airflow_valohai_reuse.stores.local import LocalStore

    cache = ExecutionCache(url)
    store = LocalStore(root, DigestCache(cache))
    scratch = root.parent / f"scratch-{count}"
    scratch.mkdir(exist_ok=True)
    outputs = []
    for i in range(count):
        body = f"{count} outputs, number {i}\n".encode()
        path = scratch / f"{i}.txt"
        path.write_bytes(body)
        digest = hashlib.sha256(body).hexdigest()
        outputs.append(Output(f"shards/{i}.txt", store.put(path, digest, len(body)), len(body), digest))
    store.flush()
    fingerprint = uuid.uuid4().hex * 2
    cache.record(Execution(str(uuid.uuid4()), fingerprint, 3, f"step-{count}", {}, outputs))
    return fingerprint


def _hit(url: str, root: Path, fingerprint: str, run: int) -> float:
    from airflow_valohai_reuse.cache.executions import ExecutionCache
    from airflow_valohai_reuse.cache.statcache import DigestCache
    from airflow_valohai_reuse.contracts import Entry, Kind, Published, TaskKey
    from airflow_valohai_reuse.reuse.decide import find_reusable
    from airflow_valohai_reuse.stores.local import LocalStore

    cache = ExecutionCache(url)
    components = type("F", (), {"digest": fingerprint})()
    start = time.perf_counter()
    store = LocalStore(root, DigestCache(cache))
    found = find_reusable(cache, store, components)  # type: ignore[arg-type]
    assert found is not None, "the seeded entry was not reused"
    published = Published.of(found, Kind.REUSED, "node")
    json.dumps(published.as_xcom(recorded=True))  # as a hit pushes it: its outputs referenced
    cache.publish(Entry(TaskKey("bench", f"run-{run}", "node"), published, 1, "p", saved_s=1.0))
    return time.perf_counter() - start


def run(options: Options) -> dict:
    name = _database()
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        root = options.workdir / "outputs-store" / "store"
        root.mkdir(parents=True)
        one, many = _entry(url, root, 1), _entry(url, root, MANY)
        times: dict[int, list[float]] = {1: [], MANY: []}
        for run_number in range(options.repeats(9, 3)):
            times[1].append(_hit(url, root, one, 2 * run_number))
            times[MANY].append(_hit(url, root, many, 2 * run_number + 1))
        single, bulk = statistics.median(times[1]), statistics.median(times[MANY])
        say(f"hit with 1 output {single * 1000:.1f} ms, with {MANY} outputs {bulk * 1000:.0f} ms")
        return {
            "hit_1_output_s": round(single, 4),
            "hit_5000_outputs_s": round(bulk, 3),
            "hit_5000_vs_1_output_ratio": round(bulk / single, 1),
        }
    finally:
        _drop(name)
