"""A hit's verification of its outputs costs a few cache queries whatever their number (one, once the
outputs' stats are sealed), and still finds each output that is gone or changed (a real SQLite cache
and local store)."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path

from sqlalchemy import event

from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.statcache import PREFETCH_BATCH, DigestCache
from airflow_valohai_reuse.contracts import Execution, Output
from airflow_valohai_reuse.fingerprint.components import COMPONENTS, Fingerprint
from airflow_valohai_reuse.reuse.decide import find_reusable
from airflow_valohai_reuse.stores.local import LocalStore

OUTPUTS = 3 * PREFETCH_BATCH + 7


def _outputs(store: LocalStore, tmp_path: Path, count: int) -> list[Output]:
    made = []
    for i in range(count):
        body = f"output {i}\n".encode()
        path = tmp_path / f"o{i}"
        path.write_bytes(body)
        digest = hashlib.sha256(body).hexdigest()
        made.append(Output(f"out/{i}.txt", store.put(path, digest, len(body)), len(body), digest))
    return made


def _queries(cache: ExecutionCache) -> list[str]:
    seen: list[str] = []
    event.listen(cache.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


def _digest_reads(queries: list[str]) -> list[str]:
    return [q for q in queries if "file_digests" in q and q.lstrip().upper().startswith("SELECT")]


class _Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_many_outputs_are_verified_in_a_few_queries_and_each_change_is_found(tmp_path):
    cache = ExecutionCache(f"sqlite:///{tmp_path / 'cache.db'}")
    store = LocalStore(tmp_path / "store", DigestCache(cache))
    outputs = _outputs(store, tmp_path, OUTPUTS)
    store.flush()
    fingerprint = Fingerprint({name: {"of": "s"} for name in COMPONENTS})
    cache.record(Execution(str(uuid.uuid4()), fingerprint.digest, 3, "s", {}, outputs))

    fresh = LocalStore(tmp_path / "store", DigestCache(cache))  # a new task: nothing known yet
    queries = _queries(cache)
    assert find_reusable(cache, fresh, fingerprint) is not None
    # the seal looked up (none yet), then ceil(OUTPUTS / PREFETCH_BATCH) reads, not one per output
    assert len(_digest_reads(queries)) == 1 + 4
    queries.clear()
    sealed = LocalStore(tmp_path / "store", DigestCache(cache))  # the next task: one query, the seal
    assert find_reusable(cache, sealed, fingerprint) is not None
    assert len(_digest_reads(queries)) == 1

    gone, changed = outputs[5], outputs[PREFETCH_BATCH + 1]
    os.unlink(gone.uri.removeprefix("file://"))
    path = Path(changed.uri.removeprefix("file://"))
    path.chmod(0o644)
    path.write_bytes(b"outpux " + path.read_bytes()[7:])  # the same size, other bytes
    logger, said = logging.getLogger("test_hit_outputs"), _Said()
    logger.addHandler(said)
    again = LocalStore(tmp_path / "store", DigestCache(cache))
    assert find_reusable(cache, again, fingerprint, logger) is None
    assert f"outputs missing or changed in the store: {gone.name}, {changed.name};" in said.lines[0]


def test_a_sealed_output_touched_is_checked_again_and_one_rewritten_is_found(tmp_path):
    cache = ExecutionCache(f"sqlite:///{tmp_path / 'cache.db'}")
    store = LocalStore(tmp_path / "store", DigestCache(cache))
    outputs = _outputs(store, tmp_path, 20)
    store.flush()
    fingerprint = Fingerprint({name: {"of": "t"} for name in COMPONENTS})
    cache.record(Execution(str(uuid.uuid4()), fingerprint.digest, 3, "t", {}, outputs))
    assert find_reusable(cache, LocalStore(tmp_path / "store", DigestCache(cache)), fingerprint) is not None

    touched = Path(outputs[3].uri.removeprefix("file://"))
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))  # same bytes
    queries = _queries(cache)
    assert find_reusable(cache, LocalStore(tmp_path / "store", DigestCache(cache)), fingerprint) is not None
    assert len(_digest_reads(queries)) > 1  # the seal no longer holds: each output checked again

    rewritten = Path(outputs[11].uri.removeprefix("file://"))
    rewritten.chmod(0o644)
    rewritten.write_bytes(b"outpux " + rewritten.read_bytes()[7:])  # the same size, other bytes
    logger, said = logging.getLogger("test_hit_outputs.sealed"), _Said()
    logger.addHandler(said)
    assert (
        find_reusable(cache, LocalStore(tmp_path / "store", DigestCache(cache)), fingerprint, logger) is None
    )
    assert outputs[11].name in said.lines[0]
