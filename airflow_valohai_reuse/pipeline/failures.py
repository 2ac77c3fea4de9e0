"""What happens after a node fails: Valohai's ``on-error`` and a task blueprint's ``on-child-error`` and
``maximum-queued-executions``, decided per DAG as Airflow settings. Pure code: no Airflow here.

On Valohai, ``stop-all`` (the default) stops the whole pipeline when the node fails, parallel branches
included; ``stop-next`` blocks only what depends on it; ``continue`` lets its dependents run anyway;
``retry`` runs the node again. Airflow's own default is ``stop-next``: a failed task blocks its
downstream (upstream_failed) and other branches go on. So:

* a pipeline where nothing can run beside a failing node (a chain of execution nodes), or where every
  node is ``stop-next``, needs nothing more;
* a pipeline whose nodes are all ``stop-all`` or ``retry`` (task nodes ``stop-all-and-error``) and
  that has parallel branches or variants is a **fail-fast** DAG: Airflow fails the running tasks (their
  containers are stopped) and skips the others as soon as one fails;
* any other pipeline (``continue``, a mix, ``continue-and-complete`` children, actions that stop it)
  has each node task check, before it starts, whether the run has been stopped or its upstream blocks
  it; the dependents of a tolerated failure run with trigger rule ``all_done``.

Either way a fail-fast or checked DAG ends with one more task, ``valohai_pipeline``: it runs when
everything else is done and fails the run exactly when Valohai's pipeline would end in error (Airflow
decides a run's state by its last tasks, which a stopped run leaves skipped, not failed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from graphlib import TopologicalSorter
from typing import TYPE_CHECKING

from valohai_yaml.objs.pipelines.node import ErrorAction
from valohai_yaml.objs.task import TaskOnChildError

from airflow_valohai_reuse.contracts import STATUS_TASK
from airflow_valohai_reuse.pipeline.actions import When, approvals, stops

if TYPE_CHECKING:
    from airflow_valohai_reuse.pipeline.analysis import Analysis

#: XCom key of a task that stopped the pipeline (an action, a rejected approval): what and why


class Regime(Enum):
    PLAIN = "plain"  # Airflow's defaults are Valohai's behaviour here
    FAIL_FAST = "fail-fast"
    CHECKED = "checked"


@dataclass(frozen=True)
class NodeRules:
    task_id: str
    node: str
    on_error: ErrorAction = ErrorAction.STOP_ALL
    mapped: bool = False
    on_child_error: TaskOnChildError | None = None
    max_queued: int | None = None

    @property
    def stops_all(self) -> bool:
        """Its failure stops the whole pipeline (``retry``: once its retry failed too)."""
        return self.on_error in (ErrorAction.STOP_ALL, ErrorAction.RETRY)

    @property
    def tolerated(self) -> bool:
        """Its dependents run even when it failed (for a task node: when some variants failed)."""
        return self.on_error == ErrorAction.CONTINUE or (
            self.mapped and self.on_child_error == TaskOnChildError.CONTINUE_AND_COMPLETE
        )

    def failed(self, states: list[str]) -> bool:
        """Whether the node ended in error, from its task's state(s) (one per variant when mapped)."""
        bad = [s for s in states if s == "failed"]
        if not bad:
            return False
        if self.mapped and self.on_child_error == TaskOnChildError.CONTINUE_AND_COMPLETE:
            return len(bad) == len(states)  # complete when at least one variant succeeded
        return True


@dataclass(frozen=True)
class RunRules:
    """A DAG's failure handling: per node task, and what the DAG does as a whole."""

    nodes: dict[str, NodeRules]
    #: task id → the node tasks directly upstream of it
    upstream: dict[str, tuple[str, ...]] = field(default_factory=dict)
    regime: Regime = Regime.PLAIN
    #: tasks that may stop the pipeline (an action, an approval): they leave a STOP_KEY XCom
    stoppers: tuple[str, ...] = ()

    @property
    def status_task(self) -> str | None:
        return None if self.regime is Regime.PLAIN else STATUS_TASK

    @property
    def check_start(self) -> bool:
        return self.regime is Regime.CHECKED or (self.regime is Regime.FAIL_FAST and bool(self.stoppers))

    def tolerated_upstream(self, task_id: str) -> set[str]:
        """Upstream node tasks whose failure the task runs after (on-error continue): they may have
        published nothing, or only some of their variants."""
        return {u for u in self.upstream.get(task_id, ()) if u in self.nodes and self.nodes[u].tolerated}

    def runs_after_failure(self, task_id: str) -> bool:
        """Whether the task runs with trigger rule all_done: an upstream's failure may be tolerated."""
        return any(self.nodes[u].tolerated for u in self.upstream.get(task_id, ()) if u in self.nodes)


def _parallel(a: Analysis) -> bool:
    """Whether two node tasks can run at once: a task node's variants, or two tasks neither of which
    depends on the other."""
    if a.sweeps:
        return True
    graph: dict[str, set[str]] = {t: set() for t in a.task_ids.values()}
    for source, target in a.deps:
        graph[target].add(source)
    order = list(TopologicalSorter(graph).static_order())
    ancestors: dict[str, set[str]] = {}
    for task in order:
        ancestors[task] = set().union(*(ancestors[p] | {p} for p in graph[task])) if graph[task] else set()
    return any(
        a_ not in ancestors[b] and b not in ancestors[a_]
        for i, a_ in enumerate(order)
        for b in order[i + 1 :]
    )


def node_rules(a: Analysis) -> dict[str, NodeRules]:
    rules = {}
    for name, task_id in a.task_ids.items():
        node = a.nodes[name]
        blueprint = a.blueprints.get(name)
        rules[task_id] = NodeRules(
            task_id,
            name,
            node.on_error,
            name in a.sweeps,
            blueprint.on_child_error if blueprint else None,
            blueprint.maximum_queued_executions if blueprint else None,
        )
    return rules


def approval_task(task_id: str, when: When) -> str:
    """The task id of a node's approval: before it starts, or of its result once it completed."""
    return f"{task_id}__approval" if when is When.STARTING else f"{task_id}__result_approval"


def stoppers_of(a: Analysis) -> tuple[str, ...]:
    """Tasks that may stop the pipeline: nodes with stop-pipeline or error-pipeline actions, and
    approvals (a rejection stops it)."""
    found: list[str] = []
    for name, actions in a.actions.items():
        task_id = a.task_ids[name]
        if stops(actions):
            found.append(task_id)
        found += [approval_task(task_id, when) for when in approvals(actions)]
    return tuple(sorted(found))


def run_rules(a: Analysis) -> RunRules:
    nodes = node_rules(a)
    stoppers = stoppers_of(a)
    upstream: dict[str, list[str]] = {}
    for source, target in sorted(a.deps):
        upstream.setdefault(target, []).append(source)
    tolerant = any(r.tolerated for r in nodes.values())
    all_stop = all(r.stops_all for r in nodes.values()) and all(
        r.on_child_error in (None, TaskOnChildError.STOP_ALL_AND_ERROR) for r in nodes.values() if r.mapped
    )
    parallel = _parallel(a)
    all_next = all(r.on_error == ErrorAction.STOP_NEXT for r in nodes.values())
    if not tolerant and not stoppers and (not parallel or all_next):
        regime = Regime.PLAIN
    elif all_stop and not tolerant:
        regime = Regime.FAIL_FAST
    else:
        regime = Regime.CHECKED
    return RunRules(nodes, {t: tuple(u) for t, u in upstream.items()}, regime, stoppers)


def rules_notes(rules: RunRules) -> list[str]:
    """The failure handling in words, for the DAG's documentation."""
    words = {
        Regime.PLAIN: "a failing node blocks the nodes after it and fails the run; nothing else can run "
        "beside it, so this is Valohai's behaviour for every node's `on-error` here",
        Regime.FAIL_FAST: "`on-error: stop-all`: the DAG is fail-fast: when a node fails, Airflow fails the "
        "tasks running beside it (their containers are stopped) and skips the others, and "
        f"`{STATUS_TASK}` ends the run failed",
        Regime.CHECKED: "each node task first checks the run: it is skipped when a `stop-all` node has "
        "failed or an action stopped the pipeline (a node already running beside the failure runs to "
        f"its end), or when an upstream it needs did not succeed; `{STATUS_TASK}` ends the run failed "
        "exactly when Valohai's pipeline would end in error",
    }
    notes = [f"failure handling: {words[rules.regime]}"]
    for r in rules.nodes.values():
        if r.on_error != ErrorAction.STOP_ALL:
            notes.append(f"node {r.node!r}: `on-error: {r.on_error.value}`: " + _ON_ERROR[r.on_error])
        if r.mapped:
            child = r.on_child_error.value if r.on_child_error else "stop-all-and-error (the default)"
            notes.append(f"task node {r.node!r}: `on-child-error: {child}`: " + _CHILD[r.on_child_error])
        if r.max_queued:
            notes.append(
                f"task node {r.node!r}: `maximum-queued-executions: {r.max_queued}`: at most "
                f"{r.max_queued} variants run at once (max_active_tis_per_dagrun)"
            )
    return notes


_ON_ERROR = {
    ErrorAction.STOP_NEXT: "its failure skips what depends on it; other branches go on",
    ErrorAction.CONTINUE: "what depends on it runs even when it failed (trigger rule all_done), without "
    "its outputs, and its failure does not fail the run",
    ErrorAction.RETRY: "its task is retried once (retries=1) before the failure counts, then as stop-all",
}
_CHILD = {
    None: "a failing variant stops the others and the node errors",
    TaskOnChildError.STOP_ALL_AND_ERROR: "a failing variant stops the others and the node errors",
    TaskOnChildError.CONTINUE_AND_ERROR: "the other variants run on; the node errors when they are done",
    TaskOnChildError.CONTINUE_AND_COMPLETE: "the other variants run on and the node completes when at "
    "least one succeeded; what depends on it receives the successful variants' outputs",
}
