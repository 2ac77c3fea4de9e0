"""Real valohai.yaml files written elsewhere become DAGs with the nodes and edges they declare."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.analysis import safe_id

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "valohai-yaml"


def _pipelines(path: Path) -> list[dict]:
    return [item["pipeline"] for item in yaml.safe_load(path.read_text()) if "pipeline" in item]


FILES = sorted(CORPUS.glob("*.yaml"))
TASKS = ("execution", "task")


def test_corpus_is_there():
    assert len(FILES) == 10


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_pipelines_build(path):
    dags = build_dags(path)
    for pipeline in _pipelines(path):
        dag = dags[safe_id(pipeline["name"])]
        nodes = {n["name"]: n["type"] for n in pipeline["nodes"] if n["type"] in TASKS}
        helpers = {t.task_id for t in dag.tasks if t.task_id.endswith("__variants")}
        assert {t.task_display_name for t in dag.tasks if t.task_id not in helpers} == set(nodes)
        for name, kind in nodes.items():
            task = dag.get_task(safe_id(name))
            variants = getattr(task, "expand_input", None)
            assert (variants is not None) == (kind == "task"), name
            if variants is not None:
                spread = f"{safe_id(name)}__variants"
                assert variants.value["variant"] or spread in helpers, name
        for edge in pipeline["edges"]:
            source, target = edge if isinstance(edge, list) else [edge["source"], edge["target"]]
            src, dst = source.split(".")[0], target.split(".")[0]
            if src in nodes and dst in nodes:
                assert safe_id(src) in dag.get_task(safe_id(dst)).upstream_task_ids
        if any(n["type"] == "deployment" for n in pipeline["nodes"]):
            assert "deployment node" in dag.doc_md and "left out" in dag.doc_md


def test_task_blueprint_becomes_one_mapped_instance_per_variant():
    (path,) = [f for f in FILES if f.name.startswith("06_")]
    dag = build_dags(path)["train-pipeline"]
    assert dag.get_task("train").expand_input.value["variant"] == [{"epochs": e} for e in (30, 40, 50)]


def test_list_metadata_spreads_into_one_variant_per_item():
    (path,) = [f for f in FILES if f.name.startswith("05_")]
    dag = build_dags(path)["dynamic-task"]
    for name in ("train-with-errors", "train-optional", "train-critical"):
        task = dag.get_task(name)
        helper = dag.get_task(f"{name}__variants")
        assert helper.upstream_task_ids == {"preprocess"}
        assert task.upstream_task_ids >= {"preprocess", helper.task_id}
        assert "one variant per item of preprocess's metadata 'storeids', as parameter 'id'" in dag.doc_md
