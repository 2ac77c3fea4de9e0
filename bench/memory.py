"""Peak memory of the worker process on a miss writing 1 GB of outputs, and on its hit.

Each run is an ``airflow dags test`` process (the task runs inside it); its peak resident set
comes from ``wait4``. A tiny miss of the same pipeline is the baseline: outputs that streamed
leave the peak where the baseline is.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

from bench.common import MB, ROOT, Options, isolated_home

BULK = ROOT / "tests" / "pipelines" / "bulk"


def _peak_mb(folder: Path, conf: dict[str, int]) -> float:
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(folder)}
    airflow = str(Path(sys.executable).with_name("airflow"))
    process = subprocess.Popen(
        [airflow, "dags", "test", "bulk", "-c", json.dumps(conf)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"airflow dags test bulk {conf} failed with exit code {process.returncode}")
    return usage.ru_maxrss * 1024 / MB


def run(opts: Options) -> dict[str, float]:
    home = isolated_home()
    folder = opts.workdir / "dags"
    folder.mkdir()
    for name in ("valohai_pipelines.py", "valohai_pipelines_check.py"):
        shutil.copy(ROOT / "dags" / name, folder / name)
    shutil.copytree(BULK, folder / "bulk")
    repeats = opts.repeats(3, 1)
    # A new number of files each time makes each run a miss; the hits repeat the last miss.
    tiny = statistics.median(_peak_mb(folder, {"megabytes": 1, "files": i}) for i in range(1, repeats + 1))
    misses = [_peak_mb(folder, {"megabytes": 1024, "files": i}) for i in range(1, repeats + 1)]
    hits = [_peak_mb(folder, {"megabytes": 1024, "files": repeats}) for _ in range(repeats)]
    miss, hit = statistics.median(misses), statistics.median(hits)
    with sqlite3.connect(home / "cache.db") as db:
        (entries,) = db.execute("select count(*) from vr_executions").fetchone()
    if entries != 2 * repeats:
        raise RuntimeError(f"expected {2 * repeats} executions (misses only), found {entries}: a hit ran")
    shutil.rmtree(home / "artifacts", ignore_errors=True)
    print(
        f"memory: tiny miss {tiny:.0f} MiB, 1 GB miss {miss:.0f} MiB, its hit {hit:.0f} MiB", file=sys.stderr
    )
    return {
        "peak_rss_mb_tiny_miss": round(tiny, 1),
        "peak_rss_mb_miss_1gb_outputs": round(miss, 1),
        "peak_rss_mb_hit_1gb_outputs": round(hit, 1),
    }
