"""``valohai-reuse`` commands over the cache's contents: ls, stats, invalidate and gc.

Each prints its results to ``args.out`` (stdout, kept apart from log lines by :mod:`~.cli`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.lifecycle import collect
from airflow_valohai_reuse.cache.statcache import DigestCache
from airflow_valohai_reuse.errors import ValohaiReuseError
from airflow_valohai_reuse.operators.orphans import sweep
from airflow_valohai_reuse.settings import load_settings
from airflow_valohai_reuse.stores.registry import open_store


def cache_db() -> ExecutionCache:
    return ExecutionCache(load_settings().sql_alchemy_conn)


def ls(args: argparse.Namespace) -> int:
    cache = cache_db()
    entries = cache.entries(step=args.step, pipeline=args.pipeline, live=not args.all)
    reused = cache.reuse_counts([e.id for e in entries])
    rows = [
        {
            "execution_id": e.id,
            "step": e.step,
            "pipeline": e.pipeline,
            "node": e.node,
            "run": f"{e.dag_id}/{e.run_id}",
            "reused": reused.get(e.id, 0),
            "finished_at": str(e.finished_at),
            "duration_s": e.duration_s,
            "outputs": len(e.outputs),
            "expires_at": str(e.expires_at) if e.expires_at else None,
            "invalidated": f"{e.invalidated_by}: {e.invalidation_reason}" if e.invalidated_at else None,
        }
        for e in entries
    ]
    if args.json:
        print(json.dumps(rows, indent=2), file=args.out)
        return 0
    line = "{:<36}  {:<20} {:<32}  {:>7}  {:>6}  {}"
    print(line.format("EXECUTION", "STEP", "FINISHED", "OUTPUTS", "REUSED", "RUN"), file=args.out)
    for row in rows:
        state = f"  invalidated by {row['invalidated']}" if row["invalidated"] else ""
        what = (row["execution_id"], row["step"], row["finished_at"], row["outputs"], row["reused"])
        print(line.format(*what, row["run"]) + state, file=args.out)
    return 0


def _since(value: str | None) -> Any:
    from datetime import UTC, datetime, timedelta

    from valohai_yaml.utils.duration import parse_duration

    if value is None:
        return None
    try:
        span = timedelta(seconds=int(value)) if value.isdigit() else parse_duration(value)
    except (ValueError, TypeError, IndexError):
        span = None
    if not span:
        raise ValohaiReuseError(f"--since {value!r} is not a duration such as 7d, 12h, 30m or 3600")
    return datetime.now(UTC) - span


def stats(args: argparse.Namespace) -> int:
    found = cache_db().stats(since=_since(args.since), pipeline=args.pipeline)
    if args.json:
        print(json.dumps(found, indent=2), file=args.out)
        return 0
    line = "{:<32} {:>8} {:>8} {:>7} {:>12}"
    for key, title in (("pipeline", "PIPELINE"), ("step", "STEP")):
        print(line.format(title, "RUN", "REUSED", "RATE", "SAVED (s)"), file=args.out)
        for row in found[f"{key}s"]:
            rate, saved = f"{row['reuse_rate']:.0%}", f"{row['saved_seconds']:.1f}"
            print(
                line.format(str(row[key]), row["executions_run"], row["executions_reused"], rate, saved),
                file=args.out,
            )
        print(file=args.out)
    return 0


def invalidate(args: argparse.Namespace) -> int:
    import getpass

    cache = cache_db()
    if args.execution:
        execution_id = cache.resolve(args.execution)  # a short id as the pages show it
        if cache.get(execution_id) is None:
            raise ValohaiReuseError(f"no reusable execution with id {execution_id!r}")
        ids = [execution_id]
    else:
        ids = [e.id for e in cache.entries(step=args.step, pipeline=args.pipeline)]
    count = cache.invalidate(ids, by=args.by or getpass.getuser(), reason=args.reason)
    print(f"invalidated {count} execution(s)", file=args.out)
    return 0


def gc(args: argparse.Namespace) -> int:
    settings, cache = load_settings(), cache_db()
    store = open_store(settings.artifact_store, settings.aws_conn_id, DigestCache(cache))
    report = collect(cache, store, dry_run=args.dry_run, min_age_s=args.min_age)
    verb = "would" if args.dry_run else "did"
    print(f"{verb} invalidate {len(report.invalidated)} execution(s) whose outputs are gone", file=args.out)
    for entry in report.invalidated:
        print(f"  {entry}", file=args.out)
    print(
        f"{verb} delete {len(report.deleted)} unreferenced artifact(s), {report.freed_bytes} bytes",
        file=args.out,
    )
    if report.stale_leases:
        print(f"removed {report.stale_leases} lease(s) left by workers that died", file=args.out)
    _gc_orphans(settings, args)
    return 0


def _gc_orphans(settings: Any, args: argparse.Namespace) -> None:
    """What dead workers leave besides leases: their containers and work folders."""
    found = sweep(
        settings.docker_url,
        settings.work_dir,
        dry_run=args.dry_run,
        min_age_s=args.min_age,
        keep_work_dirs=settings.keep_work_dirs,
    )
    if found.unreachable:
        print(
            f"could not reach the Docker daemon ({found.unreachable}); left containers and work "
            "folders as they are",
            file=args.out,
        )
        return
    verb = "would" if args.dry_run else "did"
    print(
        f"{verb} remove {len(found.containers)} node container(s) that ended or never started", file=args.out
    )
    for container in found.containers:
        print(f"  {container}", file=args.out)
    print(f"{verb} remove {len(found.pins)} image name(s) left by runs that were killed", file=args.out)
    for name in found.pins:
        print(f"  {name}", file=args.out)
    if found.work_dirs_kept:
        print("kept every work folder: keep_work_dirs is set", file=args.out)
    else:
        print(f"{verb} remove {len(found.work_dirs)} work folder(s) no container uses", file=args.out)
    for folder in found.work_dirs:
        print(f"  {folder}", file=args.out)
    for failure in found.failures:
        print(f"could not remove {failure}", file=args.out)
