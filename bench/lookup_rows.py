"""Realistic rows for the cache-lookup benchmark: made once, loaded into each backend."""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

BATCH = 50_000
PRESENT = 1000
ABSENT = 300
COLUMNS = (
    "id",
    "fingerprint",
    "fingerprint_version",
    "step",
    "pipeline",
    "node",
    "dag_id",
    "run_id",
    "task_id",
    "status",
    "components",
    "outputs",
    "exec_metadata",
    "started_at",
    "finished_at",
    "duration_s",
)


def say(message: str) -> None:
    print(f"bench.lookup: {message}", file=sys.stderr, flush=True)


def _hex(rng: random.Random, nbytes: int = 32) -> str:
    return rng.randbytes(nbytes).hex()


def _components(rng: random.Random, step: str) -> str:
    files = {f"src/{step}/mod{i}.py": _hex(rng) for i in range(rng.randint(1, 4))}
    return json.dumps(
        {
            "code": {"files": files, "scope": "auto"},
            "environment": {"PYTHONHASHSEED": "0"},
            "image": {"id": "sha256:" + _hex(rng)},
            "inputs": {"data": {"part-0.csv": {"sha256": _hex(rng)}}},
            "parameters": {"epochs": rng.randint(1, 50), "lr": round(rng.random(), 4)},
            "step": {"name": step, "command": [f"python src/{step}/main.py"], "image": "python:3.11"},
        },
        sort_keys=True,
    )


def _outputs(rng: random.Random) -> str:
    items = []
    for i in range(rng.randint(1, 3)):
        sha = _hex(rng)
        items.append(
            {
                "checksum": sha,
                "name": f"out/part-{i}.parquet",
                "size": rng.randint(1000, 10**9),
                "uri": f"file:///var/lib/valohai-reuse/artifacts/sha256/{sha[:2]}/{sha}",
            }
        )
    return json.dumps(items, sort_keys=True)


def _metadata(rng: random.Random) -> str:
    metrics = {f"metric_{i}": round(rng.random(), 6) for i in range(rng.randint(8, 20))}
    return json.dumps(
        {"metadata": metrics, "parameters": {"epochs": rng.randint(1, 50)}, "container": _hex(rng, 8)},
        sort_keys=True,
    )


class Rows:
    """The same pseudo-random rows for each backend, and which fingerprints to look up."""

    def __init__(self, count: int, seed: int = 7) -> None:
        self.count = count
        self.seed = seed
        rng = random.Random(seed)
        self.steps = [f"{rng.choice(['prep', 'train', 'eval', 'export'])}-{i:03d}" for i in range(300)]
        self.pipelines = {step: f"pipeline-{i % 40:02d}" for i, step in enumerate(self.steps)}
        self.components = [_components(rng, rng.choice(self.steps)) for _ in range(2000)]
        self.outputs = [_outputs(rng) for _ in range(2000)]
        self.metadata = [_metadata(rng) for _ in range(2000)]
        self.wanted = set(rng.sample(range(count), PRESENT))
        self.present: list[str] = []
        self.absent = [_hex(rng) for _ in range(ABSENT)]
        self.now = datetime.now(UTC)
        self.made: list[list[tuple]] | None = None

    def batches(self) -> Iterator[list[tuple]]:
        """The rows in batches; made once, then the same ones again for the next backend."""
        if self.made is None:
            started = time.perf_counter()
            self.made = list(self._make())
            say(f"made {self.count:,} rows in {time.perf_counter() - started:.1f} s")
        return iter(self.made)

    def _make(self) -> Iterator[list[tuple]]:
        rng = random.Random(self.seed + 1)
        recent: list[str] = []
        batch = []
        year = 365 * 24 * 3600
        for index in range(self.count):
            if recent and rng.random() < 0.03:
                fingerprint = rng.choice(recent)  # the same fingerprint run again
            else:
                fingerprint = _hex(rng)
                if len(recent) < 10_000:
                    recent.append(fingerprint)
            if index in self.wanted:
                self.present.append(fingerprint)
            step = rng.choice(self.steps)
            pipeline = self.pipelines[step]
            duration = rng.uniform(1, 3600)
            finished = self.now - timedelta(seconds=rng.uniform(0, year))
            batch.append(
                (
                    str(uuid.UUID(bytes=rng.randbytes(16), version=4)),
                    fingerprint,
                    1,
                    step,
                    pipeline,
                    step,
                    pipeline,
                    f"scheduled__{finished:%Y-%m-%dT%H:%M:%S}+00:00",
                    step,
                    "succeeded",
                    rng.choice(self.components),
                    rng.choice(self.outputs),
                    rng.choice(self.metadata),
                    finished - timedelta(seconds=duration),
                    finished,
                    duration,
                )
            )
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
