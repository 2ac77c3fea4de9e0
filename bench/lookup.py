"""Cache lookups among 1,000,000 entries, on SQLite and on a local PostgreSQL.

The product's table (``vr_executions``) is created by ``ExecutionCache(url)``, which migrates, and
filled with realistic rows: random 64-hex fingerprints (a few percent of them shared by several
executions), 300 step names, JSON of a few hundred bytes in each of components, outputs and
exec_metadata, ``finished_at`` spread over a year, all succeeded. Filling goes around the product,
for speed: SQLite through ``executemany`` in large transactions, PostgreSQL through ``COPY``. On
PostgreSQL an ``ANALYZE`` follows, as autovacuum would run after such a load; SQLite gets none, as
nothing runs one in production.

Then ``ExecutionCache.lookup(fingerprint)`` is timed call by call for 1000 fingerprints that exist
and 300 that do not, shuffled together; the figure is the median in milliseconds. The 95th
percentile, the hit and miss medians and the query plan of the product's statement go to stderr.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from bench.common import Options

ROWS = 1_000_000
QUICK_ROWS = 250_000
BATCH = 50_000
PRESENT = 1000
ABSENT = 300
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
COLUMNS = (
    "id",
    "fingerprint",
    "fingerprint_version",
    "step",
    "pipeline",
    "node",
    "dag_id",
    "run_id",
    "task_id",
    "status",
    "components",
    "outputs",
    "exec_metadata",
    "started_at",
    "finished_at",
    "duration_s",
)


def _say(message: str) -> None:
    print(f"bench.lookup: {message}", file=sys.stderr, flush=True)


def _hex(rng: random.Random, nbytes: int = 32) -> str:
    return rng.randbytes(nbytes).hex()


def _components(rng: random.Random, step: str) -> str:
    files = {f"src/{step}/mod{i}.py": _hex(rng) for i in range(rng.randint(1, 4))}
    return json.dumps(
        {
            "code": {"files": files, "scope": "auto"},
            "environment": {"PYTHONHASHSEED": "0"},
            "image": {"id": "sha256:" + _hex(rng)},
            "inputs": {"data": {"part-0.csv": {"sha256": _hex(rng)}}},
            "parameters": {"epochs": rng.randint(1, 50), "lr": round(rng.random(), 4)},
            "step": {"name": step, "command": [f"python src/{step}/main.py"], "image": "python:3.11"},
        },
        sort_keys=True,
    )


def _outputs(rng: random.Random) -> str:
    items = []
    for i in range(rng.randint(1, 3)):
        sha = _hex(rng)
        items.append(
            {
                "checksum": sha,
                "name": f"out/part-{i}.parquet",
                "size": rng.randint(1000, 10**9),
                "uri": f"file:///var/lib/valohai-reuse/artifacts/sha256/{sha[:2]}/{sha}",
            }
        )
    return json.dumps(items, sort_keys=True)


def _metadata(rng: random.Random) -> str:
    metrics = {f"metric_{i}": round(rng.random(), 6) for i in range(rng.randint(8, 20))}
    return json.dumps(
        {"metadata": metrics, "parameters": {"epochs": rng.randint(1, 50)}, "container": _hex(rng, 8)},
        sort_keys=True,
    )


class Rows:
    """The same pseudo-random rows for each backend, and which fingerprints to look up."""

    def __init__(self, count: int, seed: int = 7) -> None:
        self.count = count
        self.seed = seed
        rng = random.Random(seed)
        self.steps = [f"{rng.choice(['prep', 'train', 'eval', 'export'])}-{i:03d}" for i in range(300)]
        self.pipelines = {step: f"pipeline-{i % 40:02d}" for i, step in enumerate(self.steps)}
        self.components = [_components(rng, rng.choice(self.steps)) for _ in range(2000)]
        self.outputs = [_outputs(rng) for _ in range(2000)]
        self.metadata = [_metadata(rng) for _ in range(2000)]
        self.wanted = set(rng.sample(range(count), PRESENT))
        self.present: list[str] = []
        self.absent = [_hex(rng) for _ in range(ABSENT)]
        self.now = datetime.now(UTC)
        self.made: list[list[tuple]] | None = None

    def batches(self) -> Iterator[list[tuple]]:
        """The rows in batches; made once, then the same ones again for the next backend."""
        if self.made is None:
            started = time.perf_counter()
            self.made = list(self._make())
            _say(f"made {self.count:,} rows in {time.perf_counter() - started:.1f} s")
        return iter(self.made)

    def _make(self) -> Iterator[list[tuple]]:
        rng = random.Random(self.seed + 1)
        recent: list[str] = []
        batch = []
        year = 365 * 24 * 3600
        for index in range(self.count):
            if recent and rng.random() < 0.03:
                fingerprint = rng.choice(recent)  # the same fingerprint run again
            else:
                fingerprint = _hex(rng)
                if len(recent) < 10_000:
                    recent.append(fingerprint)
            if index in self.wanted:
                self.present.append(fingerprint)
            step = rng.choice(self.steps)
            pipeline = self.pipelines[step]
            duration = rng.uniform(1, 3600)
            finished = self.now - timedelta(seconds=rng.uniform(0, year))
            batch.append(
                (
                    str(uuid.UUID(bytes=rng.randbytes(16), version=4)),
                    fingerprint,
                    1,
                    step,
                    pipeline,
                    step,
                    pipeline,
                    f"scheduled__{finished:%Y-%m-%dT%H:%M:%S}+00:00",
                    step,
                    "succeeded",
                    rng.choice(self.components),
                    rng.choice(self.outputs),
                    rng.choice(self.metadata),
                    finished - timedelta(seconds=duration),
                    finished,
                    duration,
                )
            )
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def _sqlite_time(value: datetime) -> str:
    """How SQLAlchemy's SQLite DateTime stores a value (its time zone dropped)."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def fill_sqlite(path: str, rows: Rows) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    sql = f"INSERT INTO vr_executions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    for batch in rows.batches():
        db.execute("BEGIN")
        db.executemany(sql, [(*r[:13], _sqlite_time(r[13]), _sqlite_time(r[14]), r[15]) for r in batch])
        db.execute("COMMIT")
    db.close()


def fill_postgres(cache, rows: Rows) -> None:
    raw = cache.engine.raw_connection()
    try:
        cursor = raw.cursor()
        copy = f"COPY vr_executions ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)"
        for batch in rows.batches():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerows((*r[:13], r[13].isoformat(), r[14].isoformat(), r[15]) for r in batch)
            buffer.seek(0)
            cursor.copy_expert(copy, buffer)
        raw.commit()
        cursor.execute("ANALYZE vr_executions")
        raw.commit()
        cursor.close()
    finally:
        raw.close()


def _capture_statement(cache, fingerprint: str) -> tuple[str, object]:
    from sqlalchemy import event

    seen: list[tuple[str, object]] = []

    def remember(_conn, _cursor, statement, parameters, _context, _many) -> None:
        seen.append((statement, parameters))

    event.listen(cache.engine, "before_cursor_execute", remember)
    try:
        cache.lookup(fingerprint)
    finally:
        event.remove(cache.engine, "before_cursor_execute", remember)
    return next((s, p) for s, p in seen if "vr_executions" in s)


def show_plan(cache, fingerprint: str) -> None:
    """The plan of the very statement ``lookup`` sends."""
    statement, parameters = _capture_statement(cache, fingerprint)
    raw = cache.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if cache.url.startswith("sqlite"):
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = [str(row[-1]) for row in cursor.fetchall()]
        else:
            cursor.execute("EXPLAIN ANALYZE " + statement, parameters)
            plan = [row[0] for row in cursor.fetchall()]
        cursor.close()
    finally:
        raw.close()
    _say("plan of the lookup statement:\n    " + "\n    ".join(plan))


def time_lookups(cache, rows: Rows, label: str) -> float:
    assert len(rows.present) == PRESENT
    found = cache.lookup(rows.present[0])
    assert found is not None and found.fingerprint == rows.present[0] and found.finished_at is not None
    for fingerprint in rows.present[:20]:
        cache.lookup(fingerprint)  # warm-up: connections, compiled statement cache
    show_plan(cache, rows.present[1])
    calls = [(f, True) for f in rows.present] + [(f, False) for f in rows.absent]
    random.Random(3).shuffle(calls)
    hits: list[float] = []
    misses: list[float] = []
    for fingerprint, exists in calls:
        started = time.perf_counter()
        execution = cache.lookup(fingerprint)
        elapsed = (time.perf_counter() - started) * 1000
        assert (execution is not None) == exists
        (hits if exists else misses).append(elapsed)
    every = sorted(hits + misses)
    p50 = statistics.median(every)
    p95 = every[int(0.95 * len(every)) - 1]
    _say(
        f"{label}: {rows.count:,} rows, {len(every)} lookups: p50 {p50:.3f} ms, p95 {p95:.3f} ms "
        f"(existing p50 {statistics.median(hits):.3f} ms, absent p50 {statistics.median(misses):.3f} ms)"
    )
    return p50


def sqlite_p50(opts: Options, rows: Rows) -> float:
    from airflow_valohai_reuse.cache import ExecutionCache, _engines

    path = opts.workdir / "cache.db"
    url = f"sqlite:///{path}"
    ExecutionCache(url)  # creates and migrates the tables
    started = time.perf_counter()
    fill_sqlite(str(path), rows)
    _say(f"sqlite: filled {rows.count:,} rows in {time.perf_counter() - started:.1f} s, {_mb(path)} MB")
    p50 = time_lookups(ExecutionCache(url), rows, "sqlite")
    _engines.pop(url).dispose()
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return p50


def _mb(path) -> int:
    return path.stat().st_size >> 20


def postgres_p50(rows: Rows) -> float:
    from sqlalchemy import create_engine, text

    from airflow_valohai_reuse.cache import ExecutionCache, _engines

    name = f"vr_bench_lookup_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    url = f"{POSTGRES}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        cache = ExecutionCache(url)
        started = time.perf_counter()
        fill_postgres(cache, rows)
        _say(f"postgres: filled {rows.count:,} rows (and analysed) in {time.perf_counter() - started:.1f} s")
        return time_lookups(cache, rows, "postgres")
    finally:
        engine = _engines.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(opts: Options) -> dict[str, float]:
    count = QUICK_ROWS if opts.quick else ROWS
    if count != ROWS:
        _say(
            f"quick mode: {count:,} rows, not {ROWS:,} (filling 1,000,000 takes about 50 s on SQLite "
            "and 2 minutes on PostgreSQL here); the keys keep their names, run without --quick for 1M"
        )
    rows = Rows(count)
    return {
        "cache_lookup_p50_ms_1m_rows_sqlite": round(sqlite_p50(opts, rows), 4),
        "cache_lookup_p50_ms_1m_rows_postgres": round(postgres_p50(rows), 4),
    }
