"""Run one benchmark module in this process: ``python -m bench.run_one MODULE [--quick]``.

Prints its figures as one JSON object on the last line of stdout; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path

from bench.common import Options


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("module")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # Airflow and the product log to stdout; keep it for the figures alone
    workdir = Path(tempfile.mkdtemp(prefix=f"vr-bench-{args.module}-"))
    module = importlib.import_module(f"bench.{args.module}")
    figures = module.run(Options(quick=args.quick, workdir=workdir))
    results.write(json.dumps(figures) + "\n")
    results.flush()


if __name__ == "__main__":
    sys.exit(main())
