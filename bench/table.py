"""``python -m bench.table RESULTS.json > docs/benchmarks.md``: the benchmark page, from the one JSON
object ``python -m bench --json`` (or ``--quick --json``) prints.

The page is generated whole: the machine and date of the measurement in its header, one table per
benchmark module with every published figure (bench/goals.py) and its goal, and what each figure
counts. Nothing in it is written by hand, so it never disagrees with the run it shows.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.goals import GOALS, Goal
from bench.lookup import QUICK_ROWS

TITLES = {
    "runs": "Pipeline runs (`airflow dags test`)",
    "hashing": "Hashing inputs and code",
    "snapshot": "Local inputs of a node that runs",
    "s3input": "S3 inputs",
    "build": "Building DAGs from valohai.yaml",
    "lookup": "Cache lookups",
    "memory": "Worker memory",
    "hits": "The PostgreSQL cache under load",
    "outputs": "A hit against its number of outputs",
    "cluster": "A two-worker CeleryExecutor cluster",
}

# What a figure is made of, where its name and its line in the table do not say it all.
NOTES = {
    "hit_overhead_ms_per_node": (
        "A hit cannot end without one Execution API call, the push of its `valohai_execution` XCom, "
        "which users and other operators read; `dag.test()` serves that call in process. The rest, "
        "`hit_overhead_ms_per_node_beyond_xcom`, is the package's own share: settings, the run ledger "
        "read, the fingerprint with the image's ID (asked of the Docker daemon while the ledger is "
        "read), the lookup, each output's verification, and the ledger row, written while the XCom is "
        "pushed. Upstreams are read from the run ledger in one query, and a node task sends its "
        "rendered fields once, after its end is recorded."
    ),
    "input_snapshot_vs_hash_ratio": (
        "A node that runs gets a private copy of each local input, hashed while it is written and "
        "compared with the fingerprint; hashing the file alone is what identifying it costs."
    ),
    "cache_hits_per_second_postgres": (
        "Each hit is one lookup and three output verifications; the clients and the server share the "
        "machine's CPUs."
    ),
    "celery_reused_pipelines_vs_empty_ratio": (
        "This ratio depends on the scheduler more than on the nodes: after a loop that neither queued "
        "a task nor saw one finish, the scheduler sleeps up to `[scheduler] scheduler_idle_sleep_time`, "
        "so each of a run's three hops costs between a tenth of a second and a second of scheduling. "
        "The benchmark alternates batches of each kind (five in a full run) and takes medians; the "
        "ratio still varies from run to run, and grows on a slower machine, since a reused node's "
        "extra work is CPU and the baseline's is mostly the scheduler's waiting. The workers load the "
        "package before they fork task processes (`celery_preload`, "
        "[deployment.md](deployment.md#what-several-workers-need))."
    ),
    "celery_reused_pipelines_vs_scheduler_only_empty_ratio": (
        "The baseline here is EmptyOperators that the scheduler marks succeeded without sending them "
        "to a worker."
    ),
    "hit_5000_vs_1_output_ratio": (
        "A hit on many outputs costs one query for the seal of their stats and one for the ledger row, "
        "and its XCom and row reference the outputs instead of listing them; what still grows with "
        "their number is one stat per blob (which finds a blob deleted or rewritten since it was "
        "sealed) and reading the entry's output list from the cache database: about 5 microseconds "
        "an output."
    ),
    "celery_triggerer_reused_pipelines_vs_scheduler_only_empty_ratio": (
        "A node task started in the triggerer takes no worker (`celery_reused_task_worker_processes`), "
        "but Airflow's triggerer works in one-second steps: its supervisor's loop waits up to a second "
        "for activity before it loads new triggers and writes their events "
        "(`TriggerRunnerSupervisor.run_once`), and its runner's loop sleeps a second between "
        "creating triggers and reporting their events (`TriggerRunner.arun`), in "
        "airflow/jobs/triggerer_job_runner.py. A trigger that decides in a few tenths of a second "
        "still ends its task two to three seconds after it started, so a chain of three such nodes "
        "is slower than on a warm worker; the gain is the worker slots (a GPU queue's included) "
        "left free, not latency."
    ),
}

# What a quick run measures differently from a full one, beyond fewer repeats.
QUICK_NOTES = {
    "lookup": (
        f"In a quick run the lookups are among {QUICK_ROWS:,} entries, not 1,000,000; the figures keep "
        "their names."
    ),
}

SIGNS = {"<=": "≤", ">=": "≥"}

HOW = """\
`python -m bench` measures what reuse costs and saves, side by side in one run. Each module runs in
its own process; every figure is a median of repeated runs, and every ratio compares two things
measured in turns in the same process, so a ratio holds where the machine's speed drifts.

```bash
pip install -e '.[bench]'                 # adds the profiler
python -m bench --json > results.json     # every module; --quick: fewer repeats; --only MODULE ...
python -m bench.table results.json > docs/benchmarks.md
```

dag-factory, the comparison for DAG building, is installed on first use into `bench/.deps` rather
than the environment (it registers an Airflow plugin, which would load into every Airflow process
the other benchmarks time). The UI's pages with many entries have their own command,
`python -m bench.dashboard` ([ui.md](ui.md#many-entries))."""


def shown(value: Any) -> str:
    """A figure as the table shows it: three significant digits, whole numbers from 100 up."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a" if value is None else str(value)
    if isinstance(value, int) or abs(value) >= 100 or value == 0:
        return f"{value:,.0f}"
    return f"{value:#.3g}"


def goal_words(goal: Goal) -> str:
    if not goal.compare:
        return ""
    return f"{SIGNS[goal.compare]} {goal.target:g}"


def measured_at(figures: dict, path: Path) -> str:
    when = figures.get("measured_at")
    if when:
        return datetime.fromisoformat(when).strftime("%Y-%m-%d %H:%M UTC")
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return mtime.strftime("%Y-%m-%d %H:%M UTC") + " (the results file's time)"


def module_table(module: str, figures: dict, error: str | None) -> list[str]:
    lines = [f"## {TITLES.get(module, module)}", ""]
    if error:
        lines += [f"Not measured in this run: {error}.", ""]
    if figures.get("quick") and module in QUICK_NOTES:
        lines += [QUICK_NOTES[module], ""]
    lines += ["| figure | value | goal | met | what |", "| --- | --- | --- | --- | --- |"]
    for goal in (g for g in GOALS if g.module == module):
        value = figures.get(goal.key)
        met = {True: "yes", False: "**no**", None: ""}[goal.met(value)]
        lines.append(f"| `{goal.key}` | {shown(value)} | {goal_words(goal)} | {met} | {goal.what} |")
    notes = [NOTES[g.key] for g in GOALS if g.module == module and g.key in NOTES]
    return [*lines, "", *(textwrap.fill(note, 100) + "\n" for note in notes)]


def page(figures: dict, path: Path) -> str:
    errors = figures.get("errors", {})
    kind = "quick run (`--quick`: fewer repeats)" if figures.get("quick") else "full run"
    lines = [
        "# Benchmarks",
        "",
        "<!-- generated by `python -m bench.table` from `python -m bench --json`: do not edit by hand -->",
        "",
        f"Measured {measured_at(figures, path)} on {figures.get('machine', 'an unrecorded machine')}, "
        f"{kind}.",
        "",
        HOW,
        "",
    ]
    for module in dict.fromkeys(g.module for g in GOALS):
        lines += module_table(module, figures, errors.get(module))
    known = {g.key for g in GOALS} | {"machine", "measured_at", "quick", "errors"}
    extra = sorted(k for k in figures if k not in known)
    if extra:
        lines += ["## Other figures", "", "| figure | value |", "| --- | --- |"]
        lines += [f"| `{key}` | {shown(figures[key])} |" for key in extra]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.table", description=__doc__)
    parser.add_argument("results", type=Path, help="the JSON that `python -m bench --json` printed")
    args = parser.parse_args(argv)
    figures = json.loads(args.results.read_text())
    sys.stdout.write(page(figures, args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
