"""The UI's read queries (cache/aggregates.py, cache/rows.py) on rows written the way nodes write them,
and what the pages show of them (plugins/display.py). No Airflow server: the pages themselves are
checked in test_ui.py."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from airflow_valohai_reuse.cache import aggregates, rows
from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.schema import ledger
from airflow_valohai_reuse.cache.scope import Scope
from airflow_valohai_reuse.contracts import Entry, Execution, Kind, Output, Published, TaskKey
from airflow_valohai_reuse.plugins import display

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=365)


def _execution(i: int, step: str, slug: str | None, duration: float, run_id: str) -> Execution:
    return Execution(
        id=f"e{i}",
        fingerprint=f"{i:064x}",
        fingerprint_version=1,
        step=step,
        components={"environment": {"environment": slug}, "parameters": {"epochs": i}},
        outputs=[Output("model.txt", f"file:///store/{i}", 100 + i, f"{i:064x}")],
        pipeline="nightly",
        node=step,
        dag_id="nightly",
        run_id=run_id,
        task_id=step,
        finished_at=NOW - timedelta(minutes=100 - i),
        duration_s=duration,
    )


def _entry(e: Execution, kind: Kind, run_id: str, **what) -> Entry:
    return Entry(TaskKey(e.dag_id, run_id, e.task_id), Published.of(e, kind, e.node), 1, e.pipeline, **what)


@pytest.fixture
def cache(tmp_path):
    """Run r1 ran train (GPU, 3600 s) and prep (no environment, 60 s); run r2 reused both; run r3 pinned
    train and ran prep again (a changed parameter)."""
    cache = ExecutionCache(f"sqlite:///{tmp_path / 'cache.db'}")
    train, prep = _execution(1, "train", "gpu", 3600.0, "r1"), _execution(2, "prep", None, 60.0, "r1")
    for e in (train, prep):
        cache.record(e, _entry(e, Kind.RAN, "r1", reason="no earlier successful execution"))
        cache.publish(_entry(e, Kind.REUSED, "r2", saved_s=e.duration_s))
    cache.publish(_entry(train, Kind.PINNED, "r3", saved_s=train.duration_s))
    prep3 = _execution(3, "prep", None, 61.0, "r3")
    cache.record(prep3, _entry(prep3, Kind.RAN, "r3", reason="parameter epochs 2 → 3"))
    return cache


def _scope(**kwargs) -> Scope:
    return Scope(NOW - timedelta(days=7), **kwargs)


def test_tallies_count_runs_reuses_and_time_saved_per_pipeline_and_step(cache):
    with cache.engine.connect() as conn:
        days = aggregates.saved_per_day(conn, _scope())
        (pipeline,), groups = aggregates.tallies(conn, _scope(), "pipeline")
        steps, step_groups = aggregates.tallies(conn, _scope(), "step")
    total = aggregates.totals(days)
    assert (total.ran, total.reused, total.saved_s) == (3, 3, 7260.0)
    assert total.rate == 0.5
    assert (pipeline.name, pipeline.ran, pipeline.reused, groups) == ("nightly", 3, 3, 1)
    assert {s.name: (s.ran, s.reused, s.saved_s) for s in steps} == {
        "train": (1, 2, 7200.0),
        "prep": (2, 1, 60.0),
    }
    assert step_groups == 2
    assert [d.day for d in days] == [datetime.now(UTC).date()] or len(days) == 2  # past midnight


def test_one_tally_query_serves_the_ui_and_stats_with_optional_filters(cache):
    """Every DAG, any time, one pipeline, by name: what ``valohai-reuse stats`` asks; the same rows as
    the UI's tallies in another order and without paging."""
    with cache.engine.begin() as conn:
        conn.execute(update(ledger).where(ledger.c.run_id == "r1").values(recorded_at=LONG_AGO))
    with cache.engine.connect() as conn:
        by_name, groups = aggregates.tallies(conn, Scope(), "step", busiest_first=False, size=None)
        recent, _ = aggregates.tallies(conn, _scope(), "step")
        other, none = aggregates.tallies(conn, Scope(pipeline="other"), "pipeline", size=None)
        found = aggregates.stats(conn, Scope(pipeline="nightly"))
        counted = aggregates.reuse_counts(conn, ["e1", "e2", "e3"])
        hidden = aggregates.reuse_counts(conn, ["e1", "e2"], ["other"])
    assert [(t.name, t.ran, t.reused) for t in by_name] == [("prep", 2, 1), ("train", 1, 2)]
    assert groups == 2 and (other, none) == ([], 0)
    assert [(t.name, t.ran, t.reused) for t in recent] == [("prep", 1, 1), ("train", 0, 2)]
    assert found["pipelines"] == [
        {
            "pipeline": "nightly",
            "executions_run": 3,
            "executions_reused": 3,
            "reuse_rate": 0.5,
            "saved_seconds": 7260.0,
        }
    ]
    assert [row["step"] for row in found["steps"]] == ["prep", "train"]
    assert (counted, hidden) == ({"e1": 2, "e2": 1}, {})


def test_the_window_and_the_readable_dags_narrow_every_figure(cache):
    with cache.engine.begin() as conn:
        conn.execute(update(ledger).where(ledger.c.run_id == "r1").values(recorded_at=LONG_AGO))
    with cache.engine.connect() as conn:
        total = aggregates.totals(aggregates.saved_per_day(conn, _scope()))
        hidden = aggregates.totals(aggregates.saved_per_day(conn, _scope(dag_ids=["other"])))
        entries = rows.recent_entries(conn, ["other"])
    assert (total.ran, total.reused) == (1, 3)
    assert (hidden.ran, hidden.reused, entries.total, entries.rows) == (0, 0, 0, [])


def test_saved_time_by_environment_prices_into_cost(cache):
    with cache.engine.connect() as conn:
        by_slug = aggregates.saved_by_environment(conn, _scope())
    assert by_slug == {"gpu": 7200.0, None: 60.0}
    assert display.saved_cost(by_slug, {"gpu": 3.0, "*": 0.6}) == (pytest.approx(6.01), 0.0)
    assert display.saved_cost(by_slug, {"gpu": 3.0}) == (pytest.approx(6.0), 60.0)


def test_entries_page_newest_first_with_reuse_counts(cache):
    with cache.engine.connect() as conn:
        first = rows.recent_entries(conn, None, size=2)
        second = rows.recent_entries(conn, None, page=2, size=2)
        prep_only = rows.recent_entries(conn, None, step="prep")
    assert [r["id"] for r in first.rows] == ["e3", "e2"] and [r["id"] for r in second.rows] == ["e1"]
    assert (first.total, first.pages, first.has_next, second.has_next) == (3, 2, True, False)
    assert {r["id"]: r["reused_by"] for r in first.rows + second.rows} == {"e3": 0, "e2": 1, "e1": 2}
    assert first.rows[0]["outputs"][0]["name"] == "model.txt"
    assert [r["id"] for r in prep_only.rows] == ["e3", "e2"]


def test_an_execution_its_source_reusers_and_previous_of_its_step(cache):
    with cache.engine.connect() as conn:
        found = rows.execution(conn, "e1", None)
        reusers = rows.reusers(conn, "e1", None)
        previous = rows.previous(conn, "prep", rows.execution(conn, "e3", None)["finished_at"], "e3")
        assert rows.execution(conn, "e1", ["other"]) is None
    assert found["source"] == {"dag_id": "nightly", "run_id": "r1", "task_id": "train", "map_index": -1}
    assert found["components"]["environment"] == {"environment": "gpu"}
    assert [(r["run_id"], r["kind"]) for r in reusers.rows] == [("r3", "pinned"), ("r2", "reused")]
    assert previous["id"] == "e2"


def test_a_runs_rows_name_their_source_and_misses_their_reason(cache):
    with cache.engine.connect() as conn:
        r3 = rows.run_view(conn, "nightly", "r3")
        misses = rows.recent_misses(conn, _scope(), size=2)
        row = rows.ledger_row(conn, "nightly", "r3", "train", -1)
    kinds = {r["task_id"]: (r["kind"], r["source"], r["reason"]) for r in r3.rows}
    assert kinds["train"][0] == "pinned" and kinds["train"][1]["run_id"] == "r1"
    assert kinds["prep"] == ("ran", None, "parameter epochs 2 → 3")
    assert r3.saved_s == 3600.0
    assert misses.total is None and misses.has_next and misses.rows[0]["reason"] == "parameter epochs 2 → 3"
    assert row == {"kind": "pinned", "execution_id": "e1"}


def test_chart_has_a_bar_per_day_scaled_to_the_busiest():
    first = date(2026, 11, 1)
    days = [
        aggregates.Day(first + timedelta(days=2), 7200.0, 2, 1),
        aggregates.Day(first + timedelta(days=6), 3600.0, 1, 0),
    ]
    chart = display.chart(days, first, first + timedelta(days=6))
    assert len(chart.bars) == 7 and chart.unit == "min"
    heights = [b.height for b in chart.bars]
    assert heights[2] == max(heights) and heights[6] == pytest.approx(heights[2] / 2, rel=0.01)
    assert sum(h > 0 for h in heights) == 2
    assert display.duration(7260) == "2.0 h" and display.size(1536) == "1.5 KiB"
    assert display.count(49500) == "49,500" and display.count(3) == "3"


def test_importing_the_plugin_does_not_import_its_web_app():
    """Airflow loads plugins in every task process: FastAPI and the pages load only when asked for."""
    code = (
        "import sys; from airflow_valohai_reuse.plugins.reuse import ValohaiReusePlugin as P; "
        "assert 'fastapi' not in sys.modules and 'airflow_valohai_reuse.plugins.app' not in sys.modules; "
        "apps = P().fastapi_apps; assert apps[0]['url_prefix'] == '/valohai-reuse'; "
        "assert [link.name for link in P.operator_extra_links] == ['Source execution', 'Outputs']"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
