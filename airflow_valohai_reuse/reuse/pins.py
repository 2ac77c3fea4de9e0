"""Manual reuse: nodes pinned to past executions, checked before anything runs.

Two options pin: ``reuse_nodes`` names an execution per node; ``reuse_from_run`` names an earlier run
of the pipeline and the nodes that publish what they published there (read from its run ledger:
the node's row, ran, reused or pinned, gives the execution). Both resolve to executions checked the
same way (the node's step, the outputs its downstream edges need), for a run and for a plan alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from airflow_valohai_reuse.cache.ids import ExecutionIdError
from airflow_valohai_reuse.contracts import Execution, ExecutionLookup, LedgerReader, RunNode
from airflow_valohai_reuse.errors import ManualReuseError
from airflow_valohai_reuse.pipeline.options import REUSE_FROM_RUN, REUSE_NODES
from airflow_valohai_reuse.pipeline.spec import PipelineSpec
from airflow_valohai_reuse.runtime.inputs import glob_match


class ExecutionSource(ExecutionLookup, LedgerReader, Protocol):
    """Where pins are looked up: executions by id, and an earlier run's ledger."""


def _node_problem(node: Any, spec: PipelineSpec) -> str | None:
    if node not in spec.nodes:
        return f"node {node!r} is not in pipeline {spec.name!r} (nodes: {', '.join(sorted(spec.nodes))})"
    if spec.nodes[node].mapped:
        return f"node {node!r} is a task node (a parameter sweep); its variants cannot share one execution"
    return None


def _execution_problem(node: str, execution: Execution, spec: PipelineSpec) -> str | None:
    wanted = spec.nodes[node].step
    if execution.step != wanted:
        return (
            f"node {node!r} runs step {wanted!r} but execution {execution.id} is of step {execution.step!r}"
        )
    names = [output.name for output in execution.outputs]
    for pattern in spec.nodes[node].output_globs:
        if not any(glob_match(name, pattern) for name in names):
            shown = ", ".join(sorted(names)[:20]) or "no files"
            return (
                f"node {node!r}: execution {execution.id} has no output matching {pattern!r}, "
                f"which a downstream edge needs (it published: {shown})"
            )
    return None


def _by_id(pins: Any, spec: PipelineSpec, cache: ExecutionSource) -> tuple[dict[str, str], dict[str, str]]:
    """``reuse_nodes`` → ({node: execution id}, {node: problem})."""
    if not isinstance(pins, Mapping):
        raise ManualReuseError(
            {"": f"{REUSE_NODES} must be an object of node name to execution id, got {pins!r}"}
        )
    ids: dict[str, str] = {}
    problems: dict[str, str] = {}
    for node, execution_id in pins.items():
        problem = _node_problem(node, spec)
        if problem is None and (not isinstance(execution_id, str) or not execution_id):
            problem = f"node {node!r}: execution id must be a non-empty string, got {execution_id!r}"
        if problem is None:
            try:
                ids[node] = cache.resolve(execution_id)  # a short id as the pages show it
            except ExecutionIdError as exc:
                problem = f"node {node!r}: {exc}"
        if problem is not None:
            problems[str(node)] = f"{REUSE_NODES}: {problem}"
    return ids, problems


def _shape(from_run: Any) -> tuple[str, list[Any]]:
    run_id = from_run.get("run_id") if isinstance(from_run, Mapping) else None
    nodes = from_run.get("nodes") if isinstance(from_run, Mapping) else None
    if not isinstance(run_id, str) or not run_id or not isinstance(nodes, list):
        shape = '{"run_id": "<run id>", "nodes": ["node", ...]}'
        raise ManualReuseError({"": f"{REUSE_FROM_RUN} must be {shape}, got {from_run!r}"})
    return run_id, nodes


def _from_run(from_run: Any, spec: PipelineSpec, cache: ExecutionSource, dag_id: str) -> tuple[dict, dict]:
    """``reuse_from_run`` → ({node: execution id}, {node: problem}), through the ledger of that run of
    DAG ``dag_id`` (the run's own DAG: another DAG of the same pipeline may have a run of that id)."""
    if not from_run:
        return {}, {}
    run_id, nodes = _shape(from_run)
    rows = cache.run_nodes(dag_id, run_id)
    published: dict[str, list[RunNode]] = {}
    for row in rows or []:
        published.setdefault(row.node, []).append(row)
    ids: dict[str, str] = {}
    problems: dict[str, str] = {}
    for node in nodes:
        problem = _node_problem(node, spec)
        if problem is None and rows is None:
            problem = "the run ledger cannot be read (the cache database is unavailable)"
        elif problem is None and not rows:
            problem = f"no run {run_id!r} of pipeline {spec.name!r} is in the run ledger (of DAG {dag_id!r})"
        elif problem is None and node not in published:
            problem = f"node {node!r} has no execution in run {run_id!r}: it failed or did not run there"
        if problem is None:
            ids[node] = published[node][0].execution_id
        else:
            problems[str(node)] = f"{REUSE_FROM_RUN}: {problem}"
    return ids, problems


def check_pins(
    pins: Any, spec: PipelineSpec, cache: ExecutionSource, from_run: Any = None, *, dag_id: str
) -> dict[str, Execution]:
    """Every pin of a run of DAG ``dag_id``, resolved to its execution. Any problem raises one
    ManualReuseError that names each node concerned and why, before anything runs."""
    by_id, problems = _by_id(pins or {}, spec, cache)
    from_run_ids, more = _from_run(from_run, spec, cache, dag_id)
    problems |= more
    found: dict[str, Execution] = {}
    for node, execution_id in {**from_run_ids, **by_id}.items():
        option = REUSE_NODES if node in by_id else REUSE_FROM_RUN
        if node in by_id and node in from_run_ids and from_run_ids[node] != execution_id:
            problems[node] = (
                f"node {node!r} is pinned to execution {execution_id} by {REUSE_NODES} and to "
                f"{from_run_ids[node]} by {REUSE_FROM_RUN}; name it in one of them"
            )
            continue
        execution = cache.get(execution_id)
        if execution is None:
            problems[node] = f"{option}: node {node!r}: no successful execution with id {execution_id!r}" + (
                " (it was invalidated, expired or never recorded)" if option == REUSE_FROM_RUN else ""
            )
        elif problem := _execution_problem(node, execution, spec):
            problems[node] = f"{option}: {problem}"
        else:
            found[node] = execution
    if problems:
        raise ManualReuseError(problems, found)
    return found
