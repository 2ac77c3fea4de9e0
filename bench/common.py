"""Shared helpers: an isolated Airflow home, medians of repeated runs, alternating comparisons.

Every ratio compares two things measured alternately in the same process, because a small
machine's speed drifts; every figure is a median.
"""

from __future__ import annotations

import atexit
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "valohai-reuse-example:busybox"
MB = 1 << 20


@dataclass(frozen=True)
class Options:
    quick: bool
    workdir: Path  # scratch space for this run of the suite

    def repeats(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def airflow_environment(home: Path, **extra: str) -> None:
    """Point Airflow and the package at ``home``; call before Airflow is imported."""
    (home / "dags").mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'cache.db'}",
            "AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE": (home / "artifacts").as_uri(),
            "AIRFLOW__VALOHAI_REUSE__WORK_DIR": str(home / "work"),
            **extra,
        }
    )


def isolated_home() -> Path:
    """A throwaway AIRFLOW_HOME with a migrated metadata DB; set before Airflow is imported."""
    home = Path(tempfile.mkdtemp(prefix="vr-bench-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    airflow_environment(home)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ
    )
    return home


DEPS = ROOT / "bench" / ".deps"


def bench_only(requirement: str, module: str) -> None:
    """Make a bench-only package importable from bench/.deps, installing it there on first use.

    Not into the environment: a package that registers an Airflow plugin (dag-factory does) would
    otherwise load into every Airflow process the other benchmarks time.
    """
    if not (DEPS / module).exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(DEPS), requirement],
            check=True,
        )
    sys.path.insert(0, str(DEPS))


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timed(fn) for _ in range(repeats))


def alternate(a: Callable[[], Any], b: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, run in turns (a, b, a, b, …) after one warm-up each."""
    a()
    b()
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(timed(a))
        times_b.append(timed(b))
    return statistics.median(times_a), statistics.median(times_b)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    python = platform.python_version()
    return f"{os.cpu_count()} CPU ({cpu}), {memory:.0f} GiB RAM, Linux {platform.release()}, Python {python}"
