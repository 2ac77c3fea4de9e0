"""Cache hits per second on PostgreSQL, with 2 workers of 8 processes each asking at once.

A hit is what a reused node asks of the cache: ``ExecutionCache.lookup(fingerprint)``, then each of
the entry's outputs verified in the artifact store (``LocalStore.exists`` with a ``DigestCache``:
a stat of the blob and one primary-key query for its recorded checksum). Each hit uses a fresh
digest cache, as each task does, so every verification reaches the database.

The table holds the hits' entries (made with ``ExecutionCache.record``, 3 outputs each) among
filler rows like the lookup benchmark's. Sixteen processes (two "workers" of eight, each process
its own engine, as each task process has) start together and hit random entries for a fixed time;
the figure is their hits per second, all together, median of rounds. On a 2-CPU machine the clients
and the server share the CPUs, so the figure bounds what the database needs rather than what it
can do.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

from bench.common import Options
from bench.lookup import fill_postgres
from bench.lookup_rows import Rows

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
WORKERS, PROCESSES = 2, 8
HITS, BLOBS, OUTPUTS = 2000, 600, 3


def say(message: str) -> None:
    print(f"bench.hits: {message}", file=sys.stderr, flush=True)


def _database() -> str:
    from sqlalchemy import create_engine, text

    name = f"vr_bench_hits_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name


def _drop(name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _seed(url: str, store_root: Path, filler: int) -> list[str]:
    """Filler rows, then HITS entries whose outputs are real blobs; returns their fingerprints."""
    from airflow_valohai_reuse.cache.executions import ExecutionCache
    from airflow_valohai_reuse.cache.statcache import DigestCache
    from airflow_valohai_reuse.contracts import Execution, Output
    from airflow_valohai_reuse.stores.local import LocalStore

    cache = ExecutionCache(url)
    fill_postgres(cache, Rows(filler))
    rng = random.Random(11)
    store = LocalStore(store_root, DigestCache(cache))
    blobs = []
    for i in range(BLOBS):
        body = f"blob {i}\n".encode() * 100
        sha = hashlib.sha256(body).hexdigest()
        tmp = store_root.parent / f"tmp-{i}"
        tmp.write_bytes(body)
        blobs.append(Output(f"out-{i}.bin", store.put(tmp, sha, len(body)), len(body), sha))
    fingerprints = []
    for i in range(HITS):
        fingerprint = hashlib.sha256(f"hit {i}".encode()).hexdigest()
        outputs = rng.sample(blobs, OUTPUTS)
        cache.record(Execution(str(uuid.uuid4()), fingerprint, 1, f"step-{i % 50}", {}, outputs))
        fingerprints.append(fingerprint)
    for output in blobs:  # the digests are recorded once, as the first verification of each does
        store.exists(output.uri, output.size, output.checksum)
    store.flush()
    return fingerprints


def _bytes_per_entry(url: str) -> float:
    from sqlalchemy import text

    from airflow_valohai_reuse.cache.executions import ExecutionCache

    with ExecutionCache(url).engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM runs outside a transaction
        conn.execute(text("VACUUM ANALYZE vr_executions"))
        size = conn.execute(text("SELECT pg_total_relation_size('vr_executions')")).scalar()
        count = conn.execute(text("SELECT count(*) FROM vr_executions")).scalar()
    return size / count


def _server_cpu_s() -> float:
    """CPU seconds used so far by the PostgreSQL server's processes (its backends included)."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.info["name"] in ("postgres", "postmaster") and process.info["cpu_times"]:
            total += process.info["cpu_times"].user + process.info["cpu_times"].system
    return total


def _client(url: str, root: str, fingerprints: list[str], start, seconds: float, results, done) -> None:
    from airflow_valohai_reuse.cache.executions import ExecutionCache
    from airflow_valohai_reuse.cache.statcache import DigestCache
    from airflow_valohai_reuse.stores.local import LocalStore

    cache = ExecutionCache(url)
    rng = random.Random()

    def hit() -> None:
        entry = cache.lookup(rng.choice(fingerprints))
        store = LocalStore(Path(root), DigestCache(cache))
        if entry is None or not all(store.exists(o.uri, o.size, o.checksum) for o in entry.outputs):
            raise AssertionError("a seeded hit was not found or not verified")

    hit()  # connected and warm before the start
    start.wait()
    count, latencies = 0, []
    deadline = time.perf_counter() + seconds
    while (now := time.perf_counter()) < deadline:
        hit()
        latencies.append(time.perf_counter() - now)
        count += 1
    results.put((count, latencies))
    done.wait(60)  # connected until the server's CPU is read


def _round(
    url: str, root: Path, fingerprints: list[str], seconds: float, processes: int
) -> tuple[float, list[float], float]:
    context = multiprocessing.get_context("spawn")  # fresh engines: no connection crosses a fork
    start, done, results = context.Event(), context.Event(), context.Queue()
    clients = [
        context.Process(target=_client, args=(url, str(root), fingerprints, start, seconds, results, done))
        for _ in range(processes)
    ]
    for client in clients:
        client.start()
    time.sleep(2)
    while sum(1 for c in clients if c.is_alive()) < len(clients):
        raise AssertionError("a client process failed before the start")
    cpu = _server_cpu_s()
    start.set()
    found = [results.get(timeout=seconds + 120) for _ in clients]
    server_s = _server_cpu_s() - cpu
    done.set()
    for client in clients:
        client.join(timeout=30)
    latencies = [x for _, lat in found for x in lat]
    hits = sum(count for count, _ in found)
    return hits / seconds, latencies, server_s * 1000 / hits


def run(options: Options) -> dict:
    name = _database()
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        root = options.workdir / "hits-store"
        root.mkdir(parents=True)
        filler = options.repeats(200_000, 50_000)
        say(f"seeding {filler} filler rows and {HITS} entries with {OUTPUTS} outputs each")
        fingerprints = _seed(url, root, filler)
        entry_bytes = _bytes_per_entry(url)
        say(f"{entry_bytes:.0f} bytes per entry in vr_executions, its indexes included")
        seconds = options.repeats(10, 5)
        alone, _, alone_cpu = _round(url, root, fingerprints, seconds, 1)
        say(f"{alone:.0f} hits/s from one process alone, server CPU {alone_cpu:.2f} ms per hit")
        rates, latencies, server_ms = [], [], []
        for _ in range(options.repeats(3, 1)):
            rate, lat, cpu_ms = _round(url, root, fingerprints, seconds, WORKERS * PROCESSES)
            rates.append(rate)
            latencies += lat
            server_ms.append(cpu_ms)
            load = os.getloadavg()[0]
            say(
                f"{rate:.0f} hits/s from {WORKERS}x{PROCESSES} processes, server CPU {cpu_ms:.2f} ms per hit "
                f"(load average {load:.1f})"
            )
        latencies.sort()
        p50, p95 = statistics.median(latencies), latencies[int(len(latencies) * 0.95)]
        say(f"per hit (1 lookup + {OUTPUTS} verifications): p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
        return {
            "cache_hits_per_second_postgres": round(statistics.median(rates)),
            "cache_hit_p50_ms_under_load_postgres": round(p50 * 1000, 2),
            "cache_bytes_per_entry_postgres": round(entry_bytes),
            "cache_server_cpu_ms_per_hit_postgres": round(statistics.median(server_ms), 2),
        }
    finally:
        from airflow_valohai_reuse.cache.executions import _engines

        for engine in _engines.values():
            engine.dispose()
        _drop(name)
