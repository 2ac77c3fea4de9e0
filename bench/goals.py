"""Every published figure, its goal, and the module that measures it."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Goal:
    key: str
    module: str
    what: str
    compare: str  # "<=" or ">=" or "" (reported, no goal)
    target: float | None = None

    def met(self, value: Any) -> bool | None:
        if not self.compare or not isinstance(value, (int, float)):
            return None
        return {"<=": operator.le, ">=": operator.ge}[self.compare](value, self.target)

    def words(self) -> str:
        return f"{self.compare} {self.target:g}" if self.compare else "reported"


GOALS = [
    Goal(
        "reused_run_vs_empty_ratio",
        "runs",
        "fully reused 3-node run vs the same DAG of EmptyOperators, `airflow dags test` wall time",
        "<=",
        1.1,
    ),
    Goal(
        "hit_overhead_ms_per_node",
        "runs",
        "fingerprint + lookup + verify + ledger + XCom of a hit whose inputs are "
        "10 upstream outputs totalling 1 GB (task time minus an EmptyOperator's in the same run)",
        "<=",
        20,
    ),
    Goal(
        "hit_overhead_ms_per_node_beyond_xcom",
        "runs",
        "the same hit minus a Python task making the same XCom call (1 push): the package's share",
        "",
    ),
    Goal(
        "miss_vs_docker_operator_ratio",
        "runs",
        "a miss vs a plain DockerOperator, same 1-second container writing 100 MB of outputs, local store",
        "<=",
        1.15,
    ),
    Goal(
        "cold_hash_vs_openssl_sha256_ratio",
        "hashing",
        "input hashing throughput on a 1 GB file vs hashlib.file_digest(sha256)",
        ">=",
        0.9,
    ),
    Goal(
        "warm_refingerprint_10k_files_s",
        "hashing",
        "re-fingerprinting 10,000 unchanged files (10 GB sparse)",
        "<=",
        0.5,
    ),
    Goal(
        "input_snapshot_1gb_s",
        "snapshot",
        "placing a 1 GB local input for a node that runs: a private copy, hashed as it is written",
        "",
    ),
    Goal(
        "input_snapshot_vs_hash_ratio",
        "snapshot",
        "that snapshot vs hashing the same file alone",
        "",
    ),
    Goal(
        "input_snapshot_1gb_disk_mb",
        "snapshot",
        "disk the 1 GB snapshot takes while the node runs",
        "",
    ),
    Goal(
        "hit_input_fingerprint_1gb_ms",
        "snapshot",
        "identifying the unchanged 1 GB input for a reused node (warm stat cache; nothing is placed)",
        "<=",
        5,
    ),
    Goal(
        "s3_input_fingerprint_bytes_downloaded",
        "s3input",
        "bytes fetched to fingerprint a 1 GB S3 input (S3-compatible server on loopback)",
        "<=",
        0,
    ),
    Goal(
        "build_100_node_vs_python_floor_ratio",
        "build",
        "build_dags for a 100-node pipeline vs hand-written Python constructing the same 100 DockerOperators",
        "<=",
        3,
    ),
    Goal(
        "build_vs_dag_factory_ratio",
        "build",
        "build_dags vs dag-factory building the same pipeline from its YAML",
        "<=",
        0.5,
    ),
    Goal(
        "cache_lookup_p50_ms_1m_rows_sqlite",
        "lookup",
        "one lookup among 1,000,000 cache entries, SQLite",
        "<=",
        2,
    ),
    Goal(
        "cache_lookup_p50_ms_1m_rows_postgres",
        "lookup",
        "one lookup among 1,000,000 cache entries, local PostgreSQL",
        "<=",
        2,
    ),
    Goal(
        "peak_rss_mb_miss_1gb_outputs",
        "memory",
        "peak resident memory of the worker process, a miss that writes 1 GB of outputs",
        "",
    ),
    Goal(
        "peak_rss_mb_hit_1gb_outputs",
        "memory",
        "peak resident memory of the worker process, the hit of that execution",
        "",
    ),
    Goal(
        "peak_rss_mb_tiny_miss",
        "memory",
        "peak resident memory of the same worker process for a miss with 1 MB of outputs (the baseline)",
        "",
    ),
    Goal(
        "cache_hits_per_second_postgres",
        "hits",
        "hits (1 lookup + 3 output verifications each) per second the PostgreSQL cache serves to "
        "2 workers x 8 processes at once",
        "",
    ),
    Goal(
        "cache_hit_p50_ms_under_load_postgres",
        "hits",
        "one such hit's time while the 16 processes ask",
        "",
    ),
    Goal(
        "cache_server_cpu_ms_per_hit_postgres",
        "hits",
        "PostgreSQL server CPU time per hit under that load (what sizes the database)",
        "",
    ),
    Goal(
        "cache_bytes_per_entry_postgres",
        "hits",
        "disk per cache entry on PostgreSQL (vr_executions and its indexes, realistic rows)",
        "",
    ),
    Goal(
        "hit_1_output_s",
        "outputs",
        "a hit's own work for an entry with 1 output: lookup, verification, XCom value, ledger row",
        "",
    ),
    Goal(
        "hit_5000_outputs_s",
        "outputs",
        "the same for an entry with 5,000 outputs (PostgreSQL cache, local store, a new task's view)",
        "<=",
        0.3,
    ),
    Goal("hit_5000_vs_1_output_ratio", "outputs", "the two, 5,000 outputs over 1", "<=", 3),
    Goal(
        "celery_reused_pipelines_vs_empty_ratio",
        "cluster",
        "10 runs at once of a 3-node pipeline, every node reused, vs the same DAGs of EmptyOperators "
        "run by the workers; two-worker CeleryExecutor cluster, wall time to all succeeded",
        "<=",
        1.15,
    ),
    Goal("celery_reused_pipelines_s", "cluster", "those 10 reused runs' wall time", ""),
    Goal("celery_empty_pipelines_s", "cluster", "those 10 EmptyOperator runs' wall time", ""),
    Goal(
        "celery_reused_task_s",
        "cluster",
        "a reused node's task instance on a worker, start to end (median)",
        "",
    ),
    Goal("celery_empty_task_s", "cluster", "an EmptyOperator's task instance on a worker (median)", ""),
    Goal(
        "celery_reused_pipelines_vs_scheduler_only_empty_ratio",
        "cluster",
        "the reused runs vs plain EmptyOperators, which the scheduler marks succeeded without a worker",
        "",
    ),
    Goal(
        "celery_triggerer_reused_pipelines_s",
        "cluster",
        "the same 10 reused runs with `decide_in_triggerer`: every hit decided and ended in the triggerer",
        "",
    ),
    Goal(
        "celery_triggerer_reused_pipelines_vs_empty_ratio",
        "cluster",
        "those runs vs the EmptyOperators run by the workers",
        "<=",
        1.0,
    ),
    Goal(
        "celery_triggerer_reused_pipelines_vs_scheduler_only_empty_ratio",
        "cluster",
        "those runs vs the EmptyOperators the scheduler marks succeeded without a worker",
        "<=",
        1.2,
    ),
    Goal(
        "celery_triggerer_reused_task_s",
        "cluster",
        "a node reused in the triggerer, its task instance's start to end (median)",
        "",
    ),
    Goal(
        "celery_reused_task_worker_processes",
        "cluster",
        "task processes started on workers for the 30 nodes of 10 such runs, all reused",
        "<=",
        0,
    ),
]
