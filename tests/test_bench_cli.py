"""``python -m bench --only``: a module it does not run is refused by name, not run as nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("module", ["dashboard", "no_such_module"])
def test_an_unknown_module_is_refused_with_the_modules_there_are(module):
    done = _bench("--only", "build", module)
    assert done.returncode == 2
    assert f"no module {module} in python -m bench" in done.stderr
    assert "its modules: runs, hashing" in done.stderr
    assert done.stdout == ""  # nothing was run


def test_the_dashboard_benchmark_is_named_with_its_own_command():
    assert "python -m bench.dashboard" in _bench("--only", "dashboard").stderr
