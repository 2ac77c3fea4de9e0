"""Deployment nodes in a DAG: left out, but the order they stand in is kept, and what they would have
provided is said in words.

A deployment node has no Airflow meaning here (nothing is deployed), so it becomes no task. An edge
chain through it still orders its neighbours on Valohai: in ``Train → Deploy → Cleanup``, Cleanup
starts after Deploy, which starts after Train. The DAG keeps that order transitively (Cleanup after
Train), and the values Deploy would have handed on (its deployment id and version) are named in the
DAG's documentation, since the receiving parameters keep their step defaults.
"""

from __future__ import annotations

from valohai_yaml.objs import Pipeline, Step
from valohai_yaml.objs.pipelines.deployment_node import DeploymentNode
from valohai_yaml.objs.pipelines.edge import Edge

_PROVIDES = {"id": "its deployment id", "version_id": "its deployment version id"}


def deployment_names(pipeline: Pipeline) -> set[str]:
    return {n.name for n in pipeline.nodes if isinstance(n, DeploymentNode)}


def through_deployments(pipeline: Pipeline, task_ids: dict[str, str]) -> set[tuple[str, str]]:
    """(source task, target task) pairs that Valohai orders through one or more deployment nodes."""
    deployments = deployment_names(pipeline)
    links = [(e.source_node, e.target_node) for e in pipeline.edges]
    pairs: set[tuple[str, str]] = set()
    for source, first in links:
        if source not in task_ids or first not in deployments:
            continue
        frontier, seen = [first], {first}
        while frontier:  # every node reached from ``source`` through deployments only
            node = frontier.pop()
            for a, b in links:
                if a != node or b in seen:
                    continue
                seen.add(b)
                if b in deployments:
                    frontier.append(b)
                elif b in task_ids and b != source:
                    pairs.add((task_ids[source], task_ids[b]))
    return pairs


def _into(edge: Edge) -> str:
    if edge.target_type == "file" and "." in edge.target_key:
        endpoint, name = edge.target_key.split(".", 1)
        what = f"file {name!r} of endpoint {endpoint!r}"
    else:
        what = f"its {edge.target_type} {edge.target_key!r}"
    return (
        f"edge {edge.source} → {edge.target} left out: on Valohai it hands {edge.source_node}'s "
        f"{edge.source_type} {edge.source_key!r} to deployment node {edge.target_node!r} as {what}"
    )


def _out_of(edge: Edge, steps: dict[str, Step]) -> str:
    provided = _PROVIDES.get(edge.source_key, f"its {edge.source_type} {edge.source_key!r}")
    text = (
        f"edge {edge.source} → {edge.target} left out: on Valohai deployment node {edge.source_node!r} "
        f"would provide {provided}"
    )
    step = steps.get(edge.target_node)
    if edge.target_type == "parameter" and step is not None:
        declared = step.parameters.get(edge.target_key)
        default = "unset" if declared is None or declared.default is None else repr(declared.default)
        text += (
            f" as {edge.target_node}'s parameter {edge.target_key!r}; here that parameter keeps its step "
            f"default ({default})"
        )
    return text


def deployment_notes(
    pipeline: Pipeline, task_ids: dict[str, str], steps: dict[str, Step], ordered: set[tuple[str, str]]
) -> list[str]:
    """What the DAG leaves out of the pipeline's deployments, and what it keeps."""
    deployments = deployment_names(pipeline)
    notes = [
        f"deployment node {name!r} left out: deployments have no Airflow meaning here"
        for name in sorted(deployments)
    ]
    for edge in pipeline.edges:
        if edge.target_node in deployments:
            notes.append(_into(edge))
        elif edge.source_node in deployments:
            notes.append(_out_of(edge, steps))
    names = {task_id: name for name, task_id in task_ids.items()}
    notes += [
        f"{names[target]!r} runs after {names[source]!r}: the order through the left-out deployment "
        "node(s) between them is kept"
        for source, target in sorted(ordered)
    ]
    return notes
