"""A run's failure handling as verdicts on its tasks' states: which task may start, and whether the
pipeline ended in error (pipeline/failures.py makes the rules when the DAG is built).

Pure code: the states come in as Airflow's task SDK gives them (operators/runcontrol.py asks it), the
words of each verdict go out; tested without Airflow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from valohai_yaml.objs.pipelines.node import ErrorAction
from valohai_yaml.objs.task import TaskOnChildError

from airflow_valohai_reuse.pipeline.failures import RunRules


def task_states(rules: RunRules, raw: Mapping[str, Any]) -> dict[str, list[str]]:
    """Task id → its state (one per variant, by map index, for a task node), from the task SDK's
    ``get_task_states`` answer for one run (keys ``task`` or ``task_<map index>``)."""
    mapped = {
        r.task_id: re.compile(rf"{re.escape(r.task_id)}_(\d+)") for r in rules.nodes.values() if r.mapped
    }
    indexed: dict[str, list[tuple[int, str]]] = {t: [] for t in mapped}
    found: dict[str, list[str]] = {}
    for key, state in raw.items():
        owner = next((t for t, pattern in mapped.items() if key == t or pattern.fullmatch(key)), None)
        if owner is None or (key in rules.nodes and key != owner):
            found[key] = [str(state)]
        else:  # a variant, or the unexpanded task of a task node that got no variants
            index = -1 if key == owner else int(key.rsplit("_", 1)[1])
            indexed[owner].append((index, str(state)))
    for task, states in indexed.items():
        found[task] = [state for _, state in sorted(states)]
    return found


def stop_reason(
    rules: RunRules,
    task_id: str,
    map_index: int,
    states: Mapping[str, list[str]],
    stops: Mapping[str, str],
) -> str | None:
    """Why the task must not run (None: it may). ``stops``: stopper task → why it stopped the run."""
    if stops:
        task, why = next(iter(sorted(stops.items())))
        return f"not run: the pipeline was stopped by {task}: {why}"
    for r in rules.nodes.values():
        if r.task_id != task_id and r.stops_all and r.failed(states.get(r.task_id, [])):
            return (
                f"not run: node {r.node!r} failed and its on-error is {r.on_error.value}: the pipeline stops"
            )
    own = rules.nodes.get(task_id)
    if own is not None and own.mapped and own.on_child_error in (None, TaskOnChildError.STOP_ALL_AND_ERROR):
        siblings = [s for i, s in enumerate(states.get(task_id, [])) if i != map_index]
        if "failed" in siblings:
            return (
                f"not run: another variant of task node {own.node!r} failed "
                f"(on-child-error {own.on_child_error.value if own.on_child_error else 'stop-all-and-error'})"
            )
    return blocked(rules, task_id, states)


def blocked(rules: RunRules, task_id: str, states: Mapping[str, list[str]]) -> str | None:
    """Why a task that runs with trigger rule all_done must not run: an upstream it needs did not
    succeed, and its failure is not one the pipeline tolerates."""
    if not rules.runs_after_failure(task_id):
        return None
    for upstream in rules.upstream.get(task_id, ()):
        r = rules.nodes[upstream]
        got = states.get(upstream, [])
        if not got or any(s in ("skipped", "upstream_failed", "removed") for s in got):
            return f"not run: upstream node {r.node!r} did not run"
        if r.failed(got) and r.on_error != ErrorAction.CONTINUE:
            return f"not run: upstream node {r.node!r} failed (on-error {r.on_error.value})"
    return None


def verdict(
    rules: RunRules, states: Mapping[str, list[str]], stops: Mapping[str, str]
) -> tuple[bool, list[str]]:
    """(whether the pipeline ended in error, the reasons in words) once every task is done."""
    errors: list[str] = []
    said: list[str] = []
    for task, why in sorted(stops.items()):
        if why.startswith("error-pipeline"):
            errors.append(f"{task}: {why}")
        else:
            said.append(f"stopped by {task}: {why}")
    for r in rules.nodes.values():
        got = states.get(r.task_id, [])
        if not r.failed(got):
            if "failed" in got:
                said.append(
                    f"task node {r.node!r}: {got.count('failed')} of {len(got)} variants failed (tolerated)"
                )
            continue
        if r.on_error == ErrorAction.CONTINUE:
            said.append(f"node {r.node!r} failed; its on-error is continue")
        else:
            errors.append(f"node {r.node!r} failed (on-error {r.on_error.value})")
    for task, got in states.items():
        if task not in rules.nodes and task != rules.status_task and "failed" in got:
            errors.append(f"task {task} failed")
    return bool(errors), errors + said
