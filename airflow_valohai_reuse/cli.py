"""``valohai-reuse``: predict a run (``plan``) and explain a past execution (``explain``).

Both read the ``[valohai_reuse]`` settings the workers use, so they see the same cache and store.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from airflow_valohai_reuse.errors import ValohaiReuseError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="valohai-reuse", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="predict per node: hit, miss (and why) or unknown; runs nothing")
    plan.add_argument("path", help="the valohai.yaml")
    plan.add_argument("pipeline", help="pipeline name or DAG id")
    plan.add_argument("--conf", default="{}", help="the run's conf as JSON, as given to a trigger")
    plan.add_argument("--json", action="store_true", help="print JSON")
    explain = commands.add_parser("explain", help="what a past execution was keyed on, and what changed")
    explain.add_argument("execution_id")
    explain.add_argument(
        "--against", help="compare with this execution (default: the previous one of the step)"
    )
    explain.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _plan(args: argparse.Namespace) -> int:
    from airflow_valohai_reuse.factory import build_dags, safe_id
    from airflow_valohai_reuse.plan import as_json, plan_dag

    try:
        conf = json.loads(args.conf)
    except json.JSONDecodeError as exc:
        raise ValohaiReuseError(f"--conf is not JSON: {exc}") from None
    dags = build_dags(args.path)
    dag = dags.get(args.pipeline) or dags.get(safe_id(args.pipeline))
    if dag is None:
        raise ValohaiReuseError(f"no pipeline {args.pipeline!r} in {args.path}; there are: {', '.join(dags)}")
    plans = plan_dag(dag, conf)
    if args.json:
        print(json.dumps(as_json(plans), indent=2))
    else:
        for plan in plans:
            print(plan.words())
    return 0


def _explanation(execution_id: str, against: str | None) -> dict[str, Any]:
    from airflow_valohai_reuse.fingerprint import describe, diff
    from airflow_valohai_reuse.resolve import open_cache
    from airflow_valohai_reuse.settings import load_settings

    cache = open_cache(load_settings())
    execution = cache.get(execution_id)
    if execution is None:
        raise ValohaiReuseError(f"no successful execution with id {execution_id!r}")
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
        "code_files": sorted(execution.components["code"].get("files", {})),
        "parameters": execution.components["parameters"],
        "outputs": [o["name"] for o in execution.outputs],
        "compared_with": other.id if other else None,
        "changes": describe(changes) if other else "no earlier execution of this step",
    }


def _explain(args: argparse.Namespace) -> int:
    found = _explanation(args.execution_id, args.against)
    if args.json:
        print(json.dumps(found, indent=2, default=str))
        return 0
    for key, value in found.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{key}: {shown}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _plan(args) if args.command == "plan" else _explain(args)
    except ValohaiReuseError as exc:
        print(f"valohai-reuse: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
