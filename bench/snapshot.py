"""Input snapshot: what giving a running node a private copy of a 1 GB local input costs.

A node that runs gets its local (``file://`` or relative path) inputs as copies hashed while they
are written (``staging.place_inputs``), so a data file rewritten during the run cannot reach the
container. Measured on one 1 GB file of random bytes in the page cache, in turns:

- ``input_snapshot_1gb_s``: ``place_inputs`` of the file into a node's input folder (copy + hash +
  comparison with the fingerprint), median;
- ``input_snapshot_vs_hash_ratio``: that time over hashing the same file alone
  (``hashlib.file_digest``), which a miss paid before the copy existed;
- ``input_snapshot_1gb_disk_mb``: disk the copy takes while the node runs (allocated blocks);
- ``hit_input_fingerprint_1gb_ms``: identifying the same unchanged input for a node that is reused,
  with the stat cache warm: a reused node places nothing, so its input costs a stat, not a read.
"""

from __future__ import annotations

import hashlib
import shutil
import statistics
import sys
import time
from pathlib import Path

from bench.common import MB, Options, alternate
from bench.hashing import FILE_SIZE, _random_file


def _say(message: str) -> None:
    print(f"bench.snapshot: {message}", file=sys.stderr, flush=True)


def _ref(data: Path, sha256: str):
    from airflow_valohai_reuse.runtime.inputs import FileRef

    return FileRef("data.bin", data.as_uri(), sha256, FILE_SIZE)


def _snapshot(opts: Options, data: Path, sha256: str) -> tuple[float, float, float]:
    from airflow_valohai_reuse.runtime.staging import place_inputs
    from airflow_valohai_reuse.stores.local import LocalStore

    store = LocalStore(opts.workdir / "store")
    node = opts.workdir / "node"
    disk: list[float] = []

    def snapshot() -> None:
        shutil.rmtree(node, ignore_errors=True)
        place_inputs({"data": [_ref(data, sha256)]}, node, store)
        disk.append((node / "data" / "data.bin").stat().st_blocks * 512 / MB)

    def hash_only() -> None:
        with open(data, "rb") as handle:
            assert hashlib.file_digest(handle, "sha256").hexdigest() == sha256

    snapshot_s, hash_s = alternate(snapshot, hash_only, opts.repeats(7, 3))
    shutil.rmtree(node, ignore_errors=True)
    _say(f"1 GB: snapshot {snapshot_s:.3f} s, hash alone {hash_s:.3f} s, copy on disk {max(disk):.0f} MB")
    return snapshot_s, snapshot_s / hash_s, max(disk)


def _hit_fingerprint_ms(opts: Options, data: Path, sha256: str) -> float:
    from airflow_valohai_reuse.cache.executions import ExecutionCache, _engines
    from airflow_valohai_reuse.cache.statcache import BatchStatCache
    from airflow_valohai_reuse.runtime.inputs import FileRef, identify_file

    cache = ExecutionCache(f"sqlite:///{opts.workdir / 'cache.db'}")
    plain = FileRef("data.bin", data.as_uri())
    first = BatchStatCache(cache, [str(data.parent)])
    assert identify_file("data", plain, opts.workdir, first).checksum == sha256
    first.flush()
    times = []
    for _ in range(opts.repeats(15, 5)):
        started = time.perf_counter()
        stat_cache = BatchStatCache(cache, [str(data.parent)])  # as each new task makes
        assert identify_file("data", plain, opts.workdir, stat_cache).checksum == sha256
        times.append((time.perf_counter() - started) * 1000)
    _engines.pop(cache.url).dispose()
    median = statistics.median(times)
    _say(f"hit: identifying the unchanged 1 GB input took {median:.2f} ms (median)")
    return median


def run(opts: Options) -> dict[str, float]:
    data = opts.workdir / "inputs" / "random-1g.bin"
    data.parent.mkdir(parents=True)
    _random_file(data, FILE_SIZE)
    with open(data, "rb") as handle:
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    snapshot_s, ratio, disk_mb = _snapshot(opts, data, sha256)
    hit_ms = _hit_fingerprint_ms(opts, data, sha256)
    data.unlink()
    return {
        "input_snapshot_1gb_s": round(snapshot_s, 3),
        "input_snapshot_vs_hash_ratio": round(ratio, 2),
        "input_snapshot_1gb_disk_mb": round(disk_mb),
        "hit_input_fingerprint_1gb_ms": round(hit_ms, 2),
    }
