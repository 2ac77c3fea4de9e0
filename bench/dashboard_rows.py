"""Cache rows for the Execution reuse page's benchmark: executions and the ledger rows that ran or
reused them, spread over 60 days, 8 pipelines of 5 steps and three environment slugs, written through
SQL in batches."""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BATCH = 5_000
PIPELINES = [f"pipeline-{i}" for i in range(8)]
STEPS = ["preprocess", "featurize", "train", "evaluate", "report"]
SLUGS = ["aws-eu-west-1-g4dn-xlarge", "aws-eu-west-1-c5-2xlarge", None]


def say(message: str) -> None:
    print(f"bench.dashboard: {message}", file=sys.stderr, flush=True)


def _execution(rng: random.Random, i: int, now: datetime) -> dict[str, Any]:
    pipeline, step = rng.choice(PIPELINES), STEPS[i % len(STEPS)]
    finished = now - timedelta(seconds=rng.uniform(0, 60 * 86400))
    duration = rng.uniform(5, 3 * 3600)
    components = {
        "code": {"files": {f"{step}.py": rng.randbytes(32).hex()}, "scope": "auto"},
        "environment": {"environment": rng.choice(SLUGS), "resources": {}, "variables": {}},
        "image": {"id": "sha256:" + rng.randbytes(32).hex()},
        "inputs": {"data": {"part.csv": {"sha256": rng.randbytes(32).hex()}}},
        "parameters": {"epochs": rng.randint(1, 50)},
        "step": {"name": step, "command": [f"python {step}.py"]},
    }
    outputs = [
        {
            "name": f"out-{k}.bin",
            "uri": f"file:///store/sha256/{h[:2]}/{h}",
            "size": rng.randint(1, 1 << 30),
            "checksum": h,
        }
        for k, h in ((k, rng.randbytes(32).hex()) for k in range(rng.randint(1, 3)))
    ]
    run_id = f"scheduled__{finished:%Y-%m-%dT%H:%M:%S.%f}+00:00.{i}"
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128))),
        "fingerprint": rng.randbytes(32).hex(),
        "fingerprint_version": 1,
        "step": step,
        "pipeline": pipeline,
        "node": step,
        "dag_id": pipeline,
        "run_id": run_id,
        "task_id": step,
        "status": "succeeded",
        "components": json.dumps(components, sort_keys=True),
        "outputs": json.dumps(outputs, sort_keys=True),
        "exec_metadata": json.dumps(
            {"parameters": {"epochs": 3}, "inputs": {}, "environment": {}, "metadata": {}}
        ),
        "started_at": finished - timedelta(seconds=duration),
        "finished_at": finished,
        "duration_s": duration,
    }


def _ledger(e: dict[str, Any], kind: str, run_id: str, when: datetime, saved: float | None) -> dict[str, Any]:
    return {
        "dag_id": e["dag_id"],
        "run_id": run_id,
        "task_id": e["task_id"],
        "map_index": -1,
        "try_number": 1,
        "kind": kind,
        "execution_id": e["id"],
        "pipeline": e["pipeline"],
        "step": e["step"],
        "node": e["node"],
        "saved_s": saved,
        "reason": None if kind != "ran" else "parameter epochs 3 → 4",
        "published": "{}",
        "recorded_at": when,
    }


def fill(url: str, entries: int, seed: int = 7) -> None:
    """``entries`` executions and twice as many ledger rows (half ran, half reused), through SQL."""
    from sqlalchemy import insert

    from airflow_valohai_reuse.cache.executions import engine_for
    from airflow_valohai_reuse.cache.schema import executions, ledger

    rng, now = random.Random(seed), datetime.now(UTC)
    engine = engine_for(url)
    started = time.monotonic()
    made: list[dict[str, Any]] = []
    for start in range(0, entries, BATCH):
        batch = [_execution(rng, i, now) for i in range(start, min(entries, start + BATCH))]
        ran = [_ledger(e, "ran", e["run_id"], e["finished_at"], None) for e in batch]
        reused = []
        for _ in batch:
            source = rng.choice(made or batch)
            when = source["finished_at"] + timedelta(seconds=rng.uniform(60, 5 * 86400))
            reused.append(
                _ledger(source, "reused", f"manual__{uuid.uuid4()}", min(when, now), source["duration_s"])
            )
        with engine.begin() as conn:
            conn.execute(insert(executions), batch)
            conn.execute(insert(ledger), ran + reused)
        made.extend(rng.sample(batch, 50))
    say(f"filled {entries} executions and {2 * entries} ledger rows in {time.monotonic() - started:.0f} s")
