"""The CLI's result stream: UTF-8 whatever the locale, undecodable name bytes escaped, never a crash."""

from __future__ import annotations

import os
import subprocess
import sys

PRINT_A_NAME = """
from airflow_valohai_reuse.cli import _separate_results_from_logs
results = _separate_results_from_logs()
print("code: data/caf\\udce9.csv changed; model: caf\\u00e9", file=results)
"""


def test_a_name_with_undecodable_bytes_is_printed_escaped():
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": ""}
    done = subprocess.run([sys.executable, "-c", PRINT_A_NAME], capture_output=True, env=env)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.decode("utf-8") == "code: data/caf\\udce9.csv changed; model: café\n"
