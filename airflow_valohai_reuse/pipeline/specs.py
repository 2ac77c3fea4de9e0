"""The specs each node task is handed, made from a pipeline's analysis, and the order nodes run in."""

from __future__ import annotations

from graphlib import TopologicalSorter

from valohai_yaml.objs.pipelines.edge_merge_mode import EdgeMergeMode

from airflow_valohai_reuse.contracts import SourceKind
from airflow_valohai_reuse.pipeline.analysis import Analysis
from airflow_valohai_reuse.pipeline.spec import NodeSpec, PipelineNode, PipelineSpec


def pipeline_spec(a: Analysis) -> PipelineSpec:
    out_globs: dict[str, list[str]] = {name: [] for name in a.task_ids}
    for edges in a.incoming.values():
        for edge in edges["input"]:
            if edge.source_kind is SourceKind.OUTPUT:
                out_globs[edge.source_node].append(edge.source_key)
    nodes = {
        n: PipelineNode(a.task_ids[n], a.steps[n].name, tuple(out_globs[n]), n in a.sweeps)
        for n in a.task_ids
    }
    return PipelineSpec(a.pipeline.name, nodes, bool(a.pipeline.reuse_executions), tuple(a.params))


def node_spec(a: Analysis, name: str) -> NodeSpec:
    node = a.nodes[name]
    sweep = a.sweeps.get(name)
    spread = sweep.spread_from if sweep else None
    return NodeSpec(
        pipeline=a.pipeline.name,
        node=name,
        step=a.steps[name],
        repository=a.repo,
        source_file=str(a.path),
        inputs_from_edges=tuple(a.incoming[name]["input"]),
        parameters_from_edges=tuple(e for e in a.incoming[name]["parameter"] if e != spread),
        environment_from_edges=tuple(a.incoming[name]["env"]),
        pipeline_parameters={k: tuple(v) for k, v in a.targets.get(name, {}).items()},
        pipeline_defaults={k: a.params[k].default for k in a.targets.get(name, {}) if k in a.params},
        append_edges_to_defaults=node.edge_merge_mode == EdgeMergeMode.APPEND,
        code_scope=a.project.scope_for(a.steps[name].name),
        ttl=a.project.ttl_for(a.pipeline.name, a.steps[name].name),
        fingerprint_secrets=a.project.step_secrets.get(a.steps[name].name, ()),
        variants_from=spread,
        commit=a.commits.get(name),
        actions=a.actions.get(name, ()),
    )


def run_order(a: Analysis) -> list[str]:
    """Node names, each after every node it depends on (ties in declaration order)."""
    names = {task_id: name for name, task_id in a.task_ids.items()}
    graph: dict[str, set[str]] = {name: set() for name in a.task_ids}
    for source, target in a.deps:
        graph[names[target]].add(names[source])
    for name, sweep in a.sweeps.items():
        if sweep.spread_from is not None:
            graph[name].add(sweep.spread_from.source_node)
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    order: list[str] = []
    position = {name: i for i, name in enumerate(a.task_ids)}
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order += ready
        sorter.done(*ready)
    return order
