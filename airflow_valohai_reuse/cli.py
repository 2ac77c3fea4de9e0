"""``valohai-reuse``: plan a run, explain an execution, check a deployment's configuration and create or
upgrade the cache schema; ls, stats, invalidate and gc live in :mod:`~.cli_cache`.

They read the ``[valohai_reuse]`` settings the workers use, so they see the same cache and store.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from airflow_valohai_reuse import cli_cache
from airflow_valohai_reuse.cache.urls import hidden, normalise
from airflow_valohai_reuse.cli_cache import cache_db
from airflow_valohai_reuse.errors import ValohaiReuseError
from airflow_valohai_reuse.fingerprint.components import describe, diff
from airflow_valohai_reuse.preflight import check, upgrade
from airflow_valohai_reuse.reuse.plan import as_json, plan
from airflow_valohai_reuse.settings import load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="valohai-reuse", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="predict per node: hit, miss (and why) or unknown; runs nothing")
    plan.add_argument("path", help="the valohai.yaml")
    plan.add_argument("pipeline", help="pipeline name or DAG id")
    plan.add_argument("--conf", default="{}", help="the run's conf as JSON, as given to a trigger")
    plan.add_argument("--json", action="store_true", help="print JSON")
    explain = commands.add_parser("explain", help="what a past execution was keyed on, and what changed")
    explain.add_argument("execution_id", help="an execution id, or a unique prefix of 8 or more characters")
    explain.add_argument(
        "--against", help="compare with this execution (default: the previous one of the step)"
    )
    explain.add_argument("--json", action="store_true", help="print JSON")
    ls = commands.add_parser("ls", help="list reusable executions")
    ls.add_argument("--step")
    ls.add_argument("--pipeline")
    ls.add_argument("--all", action="store_true", help="also invalidated and expired ones")
    ls.add_argument("--json", action="store_true", help="print JSON")
    stats = commands.add_parser(
        "stats", help="executions run and reused, reuse rate and compute time saved, by pipeline and step"
    )
    stats.add_argument("--pipeline", help="only this pipeline")
    stats.add_argument("--since", help="only task instances of the last DURATION (7d, 12h, 30m, 3600)")
    stats.add_argument("--json", action="store_true", help="print JSON")
    invalidate = commands.add_parser("invalidate", help="stop executions from being reused (kept on record)")
    which = invalidate.add_mutually_exclusive_group(required=True)
    which.add_argument("--execution", help="one execution id (or a unique prefix of 8 or more characters)")
    which.add_argument("--step", help="every execution of this step")
    which.add_argument("--pipeline", help="every execution recorded by this pipeline")
    invalidate.add_argument("--reason", required=True, help="why; kept with the entry")
    invalidate.add_argument("--by", default=None, help="who (default: the current user)")
    gc = commands.add_parser(
        "gc",
        help="invalidate entries whose outputs are gone; delete unreferenced artifacts, ended node "
        "containers and unused work folders",
    )
    gc.add_argument("--dry-run", action="store_true", help="say what would be done; change nothing")
    gc.add_argument(
        "--min-age",
        type=float,
        default=3600.0,
        help="keep artifacts, containers and work folders younger than this (seconds)",
    )
    db = commands.add_parser("db", help="the cache database's schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser(
        "upgrade", help="create or upgrade the cache schema (idempotent; run once at deployment)"
    )
    commands.add_parser(
        "check",
        help="verify the configuration: cache database, artifact store, work folder, Docker daemon "
        "(exit code 1 on any problem)",
    )
    return parser


def _db(args: argparse.Namespace) -> int:
    url = load_settings().sql_alchemy_conn
    where = hidden(normalise(url))
    try:
        found, now = upgrade(url)
    except Exception as exc:  # any failure to reach or change the database is this command's answer
        print(f"valohai-reuse: cannot upgrade the cache database {where}: {exc}", file=sys.stderr)
        return 1
    was = "was empty" if found == 0 else "already current" if found == now else f"was at version {found}"
    print(f"cache database {where}: schema version {now} ({was})", file=_out)
    return 0


def _check(args: argparse.Namespace) -> int:
    findings = check(load_settings())
    for finding in findings:
        print(finding.line(), file=_out)
    failed = [f for f in findings if not f.ok]
    print(f"{len(failed)} problem(s)" if failed else "no problems found", file=_out)
    return 1 if failed else 0


def _plan(args: argparse.Namespace) -> int:
    try:
        conf = json.loads(args.conf)
    except json.JSONDecodeError as exc:
        raise ValohaiReuseError(f"--conf is not JSON: {exc}") from None
    plans = plan(args.path, args.pipeline, conf)
    if args.json:
        print(json.dumps(as_json(plans), indent=2), file=_out)
    else:
        for found in plans:
            print(found.words(), file=_out)
    return 0


def _explanation(execution_id: str, against: str | None) -> dict[str, Any]:
    cache = cache_db()
    execution_id = cache.resolve(execution_id)  # a short id as the pages show it
    execution = cache.get(execution_id)
    if execution is None:
        raise ValohaiReuseError(f"no successful execution with id {execution_id!r}")
    against = cache.resolve(against) if against else None
    other = cache.get(against) if against else cache.nearest(execution.step, before=execution.finished_at)
    if against and other is None:
        raise ValohaiReuseError(f"no successful execution with id {against!r}")
    changes = diff(other.components, execution.components) if other else []
    return {
        "execution_id": execution.id,
        "step": execution.step,
        "node": execution.node,
        "dag_id": execution.dag_id,
        "run_id": execution.run_id,
        "duration_s": execution.duration_s,
        "fingerprint": execution.fingerprint,
        "code_scope": execution.components["code"].get("scope"),
        "code_scope_widened": execution.components["code"].get("widened") or None,
        "code_files": sorted(execution.components["code"].get("files", {})),
        "parameters": execution.components["parameters"],
        "outputs": [o.name for o in execution.outputs],
        "compared_with": other.id if other else None,
        "changes": describe(changes) if other else "no earlier execution of this step",
    }


def _explain(args: argparse.Namespace) -> int:
    found = _explanation(args.execution_id, args.against)
    if args.json:
        print(json.dumps(found, indent=2, default=str), file=_out)
        return 0
    for key, value in found.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{key}: {shown}", file=_out)
    return 0


#: where results go; log lines written by Airflow or this package go to stderr instead
_out: TextIO = sys.stdout


def _separate_results_from_logs() -> TextIO:
    """Keep the real stdout for results and point file descriptor 1 (where logs go) at stderr.

    Results are UTF-8; a name that is not (a file name's undecodable bytes, kept as surrogates) is
    printed with those bytes escaped (``\udcff``) rather than failing the command."""
    sys.stdout.flush()
    results = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    os.dup2(2, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    global _out
    args = _parser().parse_args(argv)
    _out = _separate_results_from_logs() if argv is None else sys.stdout
    args.out = _out
    try:
        return {
            "plan": _plan,
            "explain": _explain,
            "ls": cli_cache.ls,
            "stats": cli_cache.stats,
            "invalidate": cli_cache.invalidate,
            "gc": cli_cache.gc,
            "db": _db,
            "check": _check,
        }[args.command](args)
    except ValohaiReuseError as exc:
        print(f"valohai-reuse: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
