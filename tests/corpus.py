"""The valohai.yaml corpora the corpus tests read, and what they read from the YAML and the DAGs.

The project's own corpus (``tests/pipelines/corpus``, written for these tests) is always there. The
shared public files (``../shared/corpus/valohai-yaml`` beside the repository) are an extra where that
folder exists; elsewhere, such as a fresh clone, the tests over them skip with ``SHARED_ABSENT``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_valohai_reuse import build_dags

HERE = Path(__file__).resolve().parent
OWN = HERE / "pipelines" / "corpus"
COLLECTION = HERE / "pipelines" / "collection"
SHARED = HERE.parent.parent / "shared" / "corpus" / "valohai-yaml"
SHARED_ABSENT = f"shared corpus absent: {SHARED} does not exist; only the project's own corpus is checked"
OWN_FILES = sorted(OWN.glob("*.yaml"))
SHARED_FILES = sorted(SHARED.glob("*.yaml"))
TASKS = ("execution", "task")


def items(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text())


def pipelines(path: Path) -> list[dict]:
    return [item["pipeline"] for item in items(path) if "pipeline" in item]


def ends(edge: list | dict) -> tuple[list[str], list[str]]:
    source, target = edge if isinstance(edge, list) else [edge["source"], edge["target"]]
    return source.split(".", 2), target.split(".", 2)


def spec(task):
    """The NodeSpec a node task runs with (a mapped task keeps it among its partial arguments)."""
    return task.node if hasattr(task, "node") else task.partial_kwargs["node"]


def incoming(task) -> set[tuple[str, str, str, str, str]]:
    """The edges a node task receives, each as (where the task keeps it, source node, kind, key, target)."""
    node = spec(task)
    kept = {
        "inputs": node.inputs_from_edges,
        "parameters": node.parameters_from_edges,
        "environment": node.environment_from_edges,
        "variants": [node.variants_from] if node.variants_from else [],
    }
    return {
        (k, e.source_node, e.source_kind, e.source_key, e.target_key) for k, es in kept.items() for e in es
    }


def shared_params() -> list:
    if not SHARED_FILES:
        return [pytest.param(None, id="shared", marks=pytest.mark.skip(reason=SHARED_ABSENT))]
    return [pytest.param(p, id=f"shared/{p.name}") for p in SHARED_FILES]


def shared_file(prefix: str) -> Path:
    if not SHARED_FILES:
        pytest.skip(SHARED_ABSENT)
    (path,) = [f for f in SHARED_FILES if f.name.startswith(prefix)]
    return path


def own(name: str) -> dict:
    return build_dags(OWN / name)
