"""The README's set-up and test commands work in a fresh clone placed where no ``../shared`` exists.

The clone is of the committed HEAD. Inside it, the set-up command makes its own virtual environment;
then the fast subset (``-m "not slow"``, which holds the corpus tests) runs: the whole suite inside
the suite would be recursive and take too long. The shared-corpus tests must report that they skip.
"""

from __future__ import annotations

import os
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _run(command: list[str], cwd: Path, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - started


def test_readme_set_up_and_fast_tests_pass_in_a_clone_without_shared(tmp_path):
    clone = tmp_path / "elsewhere" / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    assert not (clone.parent / "shared").exists()

    setup, setup_s = _run([str(clone / "scripts" / "setup.sh")], clone, 600)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]

    report = tmp_path / "report.xml"
    command = [".venv/bin/python", "-m", "pytest", "-m", "not slow", "-p", "no:cacheprovider"]
    tests, tests_s = _run([*command, f"--junitxml={report}"], clone, 300)
    assert tests.returncode == 0, tests.stdout[-5000:]
    cases = ET.parse(report).getroot().iter("testcase")
    outcome = {
        f"{c.get('classname')}::{c.get('name')}": (
            c.find("skipped").get("message") if c.find("skipped") is not None else "ran"
        )
        for c in cases
    }
    # the corpus tests: tests/test_corpus.py and the test_corpus_*.py modules beside it
    corpus = {name: result for name, result in outcome.items() if name.startswith("tests.test_corpus")}
    skipped = {name for name, result in corpus.items() if result != "ran"}
    # exactly the checks over the shared public files skip (their names say "shared"), and there are some
    assert skipped == {name for name in corpus if "shared" in name}
    assert "tests.test_corpus::test_shared_corpus_is_there" in skipped
    assert all("shared corpus absent" in corpus[name] for name in skipped)
    assert len(corpus) - len(skipped) >= 10  # the project's own corpus ran
    assert all(result == "ran" for name, result in outcome.items() if name not in skipped)
    print(f"set-up {setup_s:.0f} s, {len(outcome)} fast tests in {tests_s:.0f} s")
