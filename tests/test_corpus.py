"""Real valohai.yaml files written elsewhere become DAGs with the nodes and edges they declare."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.factory import safe_id

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "valohai-yaml"


def _pipelines(path: Path) -> list[dict]:
    return [item["pipeline"] for item in yaml.safe_load(path.read_text()) if "pipeline" in item]


def _execution_only(path: Path) -> bool:
    return all(n["type"] in ("execution", "deployment") for p in _pipelines(path) for n in p["nodes"])


FILES = sorted(CORPUS.glob("*.yaml"))


def test_corpus_is_there():
    assert len(FILES) == 10


@pytest.mark.parametrize("path", [f for f in FILES if _execution_only(f)], ids=lambda p: p.name)
def test_execution_pipelines_build(path):
    dags = build_dags(path)
    for pipeline in _pipelines(path):
        dag = dags[safe_id(pipeline["name"])]
        executions = {n["name"] for n in pipeline["nodes"] if n["type"] == "execution"}
        assert {t.task_display_name for t in dag.tasks} == executions
        for edge in pipeline["edges"]:
            source, target = edge if isinstance(edge, list) else [edge["source"], edge["target"]]
            src, dst = source.split(".")[0], target.split(".")[0]
            if src in executions and dst in executions:
                assert safe_id(src) in dag.get_task(safe_id(dst)).upstream_task_ids
        if any(n["type"] == "deployment" for n in pipeline["nodes"]):
            assert "deployment node" in dag.doc_md and "left out" in dag.doc_md
