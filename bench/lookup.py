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
import random
import sqlite3
import statistics
import time
import uuid
from datetime import datetime

from bench.common import Options
from bench.lookup_rows import COLUMNS, PRESENT, Rows, say

ROWS = 1_000_000
QUICK_ROWS = 250_000
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"


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
    say("plan of the lookup statement:\n    " + "\n    ".join(plan))


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
    say(
        f"{label}: {rows.count:,} rows, {len(every)} lookups: p50 {p50:.3f} ms, p95 {p95:.3f} ms "
        f"(existing p50 {statistics.median(hits):.3f} ms, absent p50 {statistics.median(misses):.3f} ms)"
    )
    return p50


def sqlite_p50(opts: Options, rows: Rows) -> float:
    from airflow_valohai_reuse.cache.executions import ExecutionCache, _engines

    path = opts.workdir / "cache.db"
    url = f"sqlite:///{path}"
    ExecutionCache(url)  # creates and migrates the tables
    started = time.perf_counter()
    fill_sqlite(str(path), rows)
    say(f"sqlite: filled {rows.count:,} rows in {time.perf_counter() - started:.1f} s, {_mb(path)} MB")
    p50 = time_lookups(ExecutionCache(url), rows, "sqlite")
    _engines.pop(url).dispose()
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return p50


def _mb(path) -> int:
    return path.stat().st_size >> 20


def postgres_p50(rows: Rows) -> float:
    from sqlalchemy import create_engine, text

    from airflow_valohai_reuse.cache.executions import ExecutionCache, _engines

    name = f"vr_bench_lookup_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    url = f"{POSTGRES}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        cache = ExecutionCache(url)
        started = time.perf_counter()
        fill_postgres(cache, rows)
        say(f"postgres: filled {rows.count:,} rows (and analysed) in {time.perf_counter() - started:.1f} s")
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
        say(
            f"quick mode: {count:,} rows, not {ROWS:,} (filling 1,000,000 takes about 50 s on SQLite "
            "and 2 minutes on PostgreSQL here); the keys keep their names, run without --quick for 1M"
        )
    rows = Rows(count)
    return {
        "cache_lookup_p50_ms_1m_rows_sqlite": round(sqlite_p50(opts, rows), 4),
        "cache_lookup_p50_ms_1m_rows_postgres": round(postgres_p50(rows), 4),
    }
