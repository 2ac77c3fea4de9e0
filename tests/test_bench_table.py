"""``python -m bench.table``: the benchmark page from ``python -m bench --json``'s output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.goals import GOALS

ROOT = Path(__file__).resolve().parent.parent


def _page(tmp_path: Path, figures: dict) -> str:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(figures))
    done = subprocess.run(
        [sys.executable, "-m", "bench.table", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def _row(page: str, key: str) -> list[str]:
    (line,) = [line for line in page.splitlines() if line.startswith(f"| `{key}` |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_page_names_the_machine_and_date_and_lists_every_figure_once(tmp_path):
    figures = {g.key: 1.0 for g in GOALS}
    machine = "2 CPU (Some CPU), 8 GiB RAM, Linux 6.1, Python 3.11.7"
    page = _page(tmp_path, {**figures, "machine": machine, "measured_at": "2026-12-03T06:55+00:00"})
    header = page.splitlines()[4]
    assert machine in header and "2026-12-03 06:55 UTC" in header and "full run" in header
    for goal in GOALS:
        assert page.count(f"| `{goal.key}` |") == 1, goal.key


def test_goals_are_marked_met_or_not_and_failed_modules_say_so(tmp_path):
    page = _page(
        tmp_path,
        {
            "reused_run_vs_empty_ratio": 0.97,
            "hit_overhead_ms_per_node": 25.3,
            "cache_hits_per_second_postgres": 1337.4,
            "machine": "m",
            "measured_at": "2026-12-03T06:55+00:00",
            "quick": True,
            "errors": {"cluster": "bench.cluster failed with exit code 1"},
        },
    )
    assert _row(page, "reused_run_vs_empty_ratio")[1:4] == ["0.970", "≤ 1.1", "yes"]
    assert _row(page, "hit_overhead_ms_per_node")[1:4] == ["25.3", "≤ 20", "**no**"]
    assert _row(page, "cache_hits_per_second_postgres")[1:4] == ["1,337", "", ""]  # reported, no goal
    assert _row(page, "celery_reused_task_s")[1] == "n/a"
    assert "Not measured in this run: bench.cluster failed with exit code 1." in page
    assert "quick run" in page.splitlines()[4]
    assert "not 1,000,000" in page  # a quick run's lookups are among fewer rows
