"""A hit's verification of its outputs costs a few cache queries whatever their number, and still
finds each output that is gone or changed (a real SQLite cache and local store)."""

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
    digest_reads = [q for q in queries if "file_digests" in q and q.lstrip().upper().startswith("SELECT")]
    assert len(digest_reads) == 4  # ceil(OUTPUTS / PREFETCH_BATCH), not one per output

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
