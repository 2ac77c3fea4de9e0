"""Every corpus file becomes DAGs with the nodes, edges, variants and parameters its YAML declares,
and the project's own corpus covers every feature the DAG builder supports.

The project's own corpus (``tests/pipelines/corpus``, written for these tests) is always checked.
The shared public files (``../shared/corpus/valohai-yaml`` beside the repository) are checked as an
extra where that folder exists; elsewhere, such as a fresh clone, those tests are skipped and say so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus import (
    OWN_FILES,
    SHARED,
    SHARED_ABSENT,
    SHARED_FILES,
    TASKS,
    ends,
    incoming,
    items,
    pipelines,
    shared_params,
    spec,
)

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.contracts import STATUS_TASK
from airflow_valohai_reuse.pipeline.analysis import safe_id

#: where a node task keeps an incoming edge, by the edge's target kind
KEPT = {"input": ("inputs",), "parameter": ("parameters",), "environment-variable": ("environment",)}
FEATURES = {
    "list edge",
    "dict edge",
    "output glob",
    "input → input",
    "parameter → parameter",
    "metadata → parameter",
    "environment-variable edge",
    "dependency edge",
    "edge into a deployment",
    "edge out of a deployment",
    "pipeline parameter targets",
    "pipeline parameter target",
    "pipeline parameter list default",
    "override",
    "edge-merge-mode replace",
    "edge-merge-mode append",
    "reuse-executions",
    "style multiple",
    "style linear",
    "style logspace",
    "style single",
    "integerify",
    "parameter-sets",
    "task node without blueprint",
}


def _targets(parameter: dict) -> list[str]:
    targets = parameter.get("targets", parameter.get("target", []))
    return [targets] if isinstance(targets, str) else targets


def _features(path: Path) -> set[str]:
    """What one corpus file exercises, read from its YAML rather than from the product."""
    found: set[str] = set()
    for item in items(path):
        for vp in item.get("task", {}).get("parameters", []):
            found.add(f"style {vp['style']}")
            found |= {"integerify"} if vp["rules"].get("integerify") else set()
        found |= {"parameter-sets"} if item.get("task", {}).get("parameter-sets") else set()
    for pipeline in pipelines(path):
        kinds = {n["name"]: n["type"] for n in pipeline["nodes"]}
        found |= {"reuse-executions"} if pipeline.get("reuse-executions") else set()
        for node in pipeline["nodes"]:
            found |= {"override"} if "override" in node else set()
            found |= {f"edge-merge-mode {node['edge-merge-mode']}"} if "edge-merge-mode" in node else set()
            found |= {"task node without blueprint"} if node["type"] == "task" and "step" in node else set()
        for pp in pipeline.get("parameters", []):
            found |= {"pipeline parameter targets" if "targets" in pp else "pipeline parameter target"}
            found |= {"pipeline parameter list default"} if isinstance(pp.get("default"), list) else set()
        for edge in pipeline["edges"]:
            found.add("list edge" if isinstance(edge, list) else "dict edge")
            (src, skind, skey), (dst, tkind, _) = ends(edge)
            found |= {"output glob"} if skind == "output" and "*" in skey else set()
            found |= {"edge into a deployment"} if kinds[dst] == "deployment" else set()
            found |= {"edge out of a deployment"} if kinds[src] == "deployment" else set()
            names = {
                ("input", "input"): "input → input",
                ("parameter", "parameter"): "parameter → parameter",
                ("metadata", "parameter"): "metadata → parameter",
                ("environment-variable", "environment-variable"): "environment-variable edge",
                ("dependency", "dependency"): "dependency edge",
            }
            found |= {names[skind, tkind]} if (skind, tkind) in names else set()
    return found


def _through_deployments(pipeline: dict) -> set[tuple[str, str]]:
    """(source, target) node pairs linked through one or more deployment nodes, read from the YAML."""
    kinds = {n["name"]: n["type"] for n in pipeline["nodes"]}
    links = {(ends(e)[0][0], ends(e)[1][0]) for e in pipeline["edges"]}
    pairs = set()
    for src, mid in links:
        frontier, seen = [mid], set()
        while frontier:
            node = frontier.pop()
            if kinds.get(node) != "deployment" or node in seen:
                continue
            seen.add(node)
            for a, b in links:
                if a == node:
                    if kinds[b] in TASKS and kinds[src] in TASKS and b != src:
                        pairs.add((src, b))
                    frontier.append(b)
    return pairs


def _check_deployments(dag, pipeline: dict) -> None:
    if any(n["type"] == "deployment" for n in pipeline["nodes"]):
        assert "deployment node" in dag.doc_md and "left out" in dag.doc_md
    for src, dst in _through_deployments(pipeline):
        assert safe_id(src) in dag.get_task(safe_id(dst)).upstream_task_ids, (src, dst)


def test_own_corpus_is_there_and_covers_every_feature():
    assert [p.name for p in OWN_FILES] == [
        "01_fan-in.yaml",
        "02_parameters.yaml",
        "03_overrides.yaml",
        "04_sweeps.yaml",
        "05_spread.yaml",
        "06_deployment.yaml",
    ]
    covered = set().union(*(_features(p) for p in OWN_FILES))
    assert covered >= FEATURES, sorted(FEATURES - covered)


def test_shared_corpus_is_there():
    if not SHARED.is_dir():
        pytest.skip(SHARED_ABSENT)
    assert SHARED_FILES, f"no valohai.yaml files in {SHARED}"


@pytest.mark.parametrize("path", [pytest.param(p, id=f"own/{p.name}") for p in OWN_FILES] + shared_params())
def test_pipelines_build(path):
    dags = build_dags(path)
    assert set(dags) == {safe_id(p["name"]) for p in pipelines(path)}
    for pipeline in pipelines(path):
        dag = dags[safe_id(pipeline["name"])]
        assert dag.params["reuse_executions"] is bool(pipeline.get("reuse-executions", False))
        nodes = {n["name"]: n["type"] for n in pipeline["nodes"] if n["type"] in TASKS}
        helpers = {
            t.task_id for t in dag.tasks if t.task_id.endswith("__variants") or t.task_id == STATUS_TASK
        }
        assert {t.task_display_name for t in dag.tasks if t.task_id not in helpers} == set(nodes)
        for name, kind in nodes.items():
            task = dag.get_task(safe_id(name))
            variants = getattr(task, "expand_input", None)
            assert (variants is not None) == (kind == "task"), name
            if variants is not None:
                spread = f"{safe_id(name)}__variants"
                assert variants.value["variant"] or spread in helpers, name
        for edge in pipeline["edges"]:
            (src, skind, skey), (dst, tkind, tkey) = ends(edge)
            if src in nodes and dst in nodes:
                target = dag.get_task(safe_id(dst))
                assert safe_id(src) in target.upstream_task_ids
                if skind != "dependency":
                    places = KEPT[tkind] + (("variants",) if skind == "metadata" else ())
                    assert any((k, src, skind, skey, tkey) in incoming(target) for k in places), edge
        for pp in pipeline.get("parameters", []):
            # the raw default: Airflow resolving it would also validate it against its type
            assert dag.params.get_param(pp["name"]).value == pp.get("default")
            for node, _, name in (t.split(".", 2) for t in _targets(pp)):
                assert name in spec(dag.get_task(safe_id(node))).pipeline_parameters[pp["name"]]
        _check_deployments(dag, pipeline)
