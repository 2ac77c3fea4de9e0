"""``python -m bench [--quick] [--json] [--only MODULE ...]``: run every benchmark, print the table."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench.common import ROOT, machine
from bench.goals import GOALS


def _run_module(module: str, quick: bool) -> dict:
    command = [sys.executable, "-m", "bench.run_one", module, *(["--quick"] if quick else [])]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # stderr: shown as it runs
    print(f"bench: {module} took {time.monotonic() - started:.0f} s", file=sys.stderr)
    if done.returncode != 0:
        return {"error": f"bench.{module} failed with exit code {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(figures: dict, where: str) -> str:
    lines = [f"Measured on: {where}", "", "| figure | value | goal | met |", "| --- | --- | --- | --- |"]
    for goal in GOALS:
        value = figures.get(goal.key)
        met = goal.met(value)
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        mark = {True: "yes", False: "**no**", None: ""}[met]
        lines.append(f"| `{goal.key}` | {shown} | {goal.words()} | {mark} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats: under 10 minutes")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--only", nargs="*", help="run only these modules")
    args = parser.parse_args()
    known = list(dict.fromkeys(g.module for g in GOALS))
    unknown = [m for m in args.only or () if m not in known]
    if unknown:
        alone = " (bench.dashboard runs alone: python -m bench.dashboard)" if "dashboard" in unknown else ""
        names = ", ".join(unknown)
        parser.error(f"no module {names} in python -m bench{alone}; its modules: {', '.join(known)}")
    modules = [m for m in known if not args.only or m in args.only]
    figures: dict = {}
    errors: dict = {}
    for module in modules:
        found = _run_module(module, args.quick)
        if "error" in found:
            errors[module] = found.pop("error")
        figures.update(found)
    figures["machine"] = machine()
    figures["measured_at"] = datetime.now(UTC).isoformat(timespec="minutes")
    figures["quick"] = args.quick
    if errors:
        figures["errors"] = errors
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(_table(figures, figures["machine"]))
        for module, error in errors.items():
            print(f"\n{module}: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
