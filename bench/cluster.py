"""Ten pipeline runs at once on the two-worker CeleryExecutor cluster: every node reused, against
the same DAGs of EmptyOperators.

The cluster is tests/cluster.py's (scheduler, API server, dag-processor, triggerer, two ``airflow
celery worker``s with 4 slots each, Redis, PostgreSQL for metadata and cache, moto S3 for artifacts).
The pipeline is the tests' ``basic`` (prepare → fit → report), run once beforehand so that every node
of the timed runs is a hit. A batch is 10 runs triggered through the REST API back to back; its wall
time runs from the first trigger to the last run's end date.

Two baselines, the same three-task chain of EmptyOperators: one whose tasks carry an
``on_execute_callback``, so that, like any task, they are queued to Celery and run by a worker
(what a reused node costs beyond that is the package's share); and a plain one, which the
scheduler marks succeeded without sending it to a worker at all (reported only: it measures the
scheduler, not a worker). Batches alternate, five of each (their walls vary by seconds with the
scheduler's timing), and each figure is a median.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime

from bench.common import ROOT, Options

sys.path.insert(0, str(ROOT / "tests"))
from cluster import Cluster
from cluster_config import IN_TRIGGERER_DAGS

RUNS = 10
EMPTY_DAGS = '''
"""The basic pipeline's shape with EmptyOperators: run by workers, and skipped by the scheduler."""
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG


def _on_a_worker(context):
    """A callback makes the scheduler queue the task to a worker instead of marking it done."""


for dag_id, callback in (("empty_basic_on_workers", _on_a_worker), ("empty_basic", None)):
    with DAG(dag_id, schedule=None, max_active_runs=16):
        prepare, fit, report = (
            EmptyOperator(task_id=name, on_execute_callback=callback) for name in ("prepare", "fit", "report")
        )
        prepare >> fit >> report
'''


def say(message: str) -> None:
    print(f"bench.cluster: {message}", file=sys.stderr, flush=True)


def _end(cluster: Cluster, dag_id: str, run_id: str) -> datetime | None:
    status, run = cluster.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    if status != 200 or run["state"] not in ("success", "failed"):
        return None
    assert run["state"] == "success", f"{dag_id}/{run_id} failed"
    return datetime.fromisoformat(run["end_date"])


def task_instances(cluster: Cluster, dag_id: str, runs: list[str]) -> list[dict]:
    found = []
    for run_id in runs:
        status, answer = cluster.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        assert status == 200, answer
        found += answer["task_instances"]
    return found


def task_seconds(instances: list[dict]) -> list[float]:
    """Each task instance's duration (from its start, on a worker or in the triggerer, to its end)."""
    return [ti["duration"] for ti in instances if ti["duration"] is not None]


def worker_processes(instances: list[dict]) -> int:
    """Task instances a worker ran: queued to the executor, or given a worker's host or process."""
    return sum(1 for ti in instances if ti["queued_when"] or ti["hostname"] or ti["pid"])


def batch(cluster: Cluster, dag_id: str) -> tuple[float, list[str]]:
    """Seconds from triggering RUNS runs at once to the end of the last one, and the runs."""
    started = datetime.now().astimezone()
    runs = [cluster.trigger(dag_id) for _ in range(RUNS)]
    ends: dict[str, datetime] = {}
    deadline = time.monotonic() + 900
    while len(ends) < len(runs):
        assert time.monotonic() < deadline, f"{dag_id}: {len(ends)} of {RUNS} runs done after 900 s"
        for run_id in runs:
            if run_id not in ends and (end := _end(cluster, dag_id, run_id)) is not None:
                ends[run_id] = end
        time.sleep(0.5)
    return (max(ends.values()) - started).total_seconds(), runs


def run(options: Options) -> dict:
    extra = {"empty_basic.py": EMPTY_DAGS, "in_triggerer_basic.py": IN_TRIGGERER_DAGS}
    cluster = Cluster(options.workdir / "cluster", extra_dags=extra, concurrency=4)
    try:
        cluster.start()
        dags = ["basic", "in_triggerer_basic", "empty_basic_on_workers", "empty_basic"]
        cluster.ready(dags)
        first = cluster.trigger("basic")  # every node runs once; the timed runs reuse them all
        assert cluster.wait_run("basic", first) == "success"
        times: dict[str, list[float]] = {dag_id: [] for dag_id in dags}
        tasks: dict[str, list[dict]] = {dag_id: [] for dag_id in dags}
        for dag_id in dags:  # warm-up: the workers' first parses of each DAG file
            batch(cluster, dag_id)
        for _ in range(options.repeats(5, 1)):
            for dag_id in dags:
                wall, runs = batch(cluster, dag_id)
                times[dag_id].append(wall)
                tasks[dag_id] += task_instances(cluster, dag_id, runs)
                say(f"{RUNS} runs of {dag_id}: {wall:.1f} s")
        seconds = {dag_id: statistics.median(task_seconds(tasks[dag_id]) or [0.0]) for dag_id in dags}
        for dag_id in dags[:3]:
            say(f"{dag_id}: median task instance {seconds[dag_id]:.2f} s")
        reused, in_triggerer, on_workers, scheduler_only = (statistics.median(times[d]) for d in dags)
        # the last batch of in-triggerer runs: 10 runs of 3 reused nodes
        last = tasks["in_triggerer_basic"][-3 * RUNS :]
        return {
            "celery_reused_pipelines_vs_empty_ratio": round(reused / on_workers, 3),
            "celery_reused_pipelines_s": round(reused, 1),
            "celery_empty_pipelines_s": round(on_workers, 1),
            "celery_reused_pipelines_vs_scheduler_only_empty_ratio": round(reused / scheduler_only, 2),
            "celery_reused_task_s": round(seconds["basic"], 2),
            "celery_empty_task_s": round(seconds["empty_basic_on_workers"], 2),
            "celery_triggerer_reused_pipelines_s": round(in_triggerer, 1),
            "celery_triggerer_reused_pipelines_vs_empty_ratio": round(in_triggerer / on_workers, 3),
            "celery_triggerer_reused_pipelines_vs_scheduler_only_empty_ratio": round(
                in_triggerer / scheduler_only, 2
            ),
            "celery_triggerer_reused_task_s": round(seconds["in_triggerer_basic"], 2),
            "celery_reused_task_worker_processes": worker_processes(last),
        }
    finally:
        cluster.stop()
