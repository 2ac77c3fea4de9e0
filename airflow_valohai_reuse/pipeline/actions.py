"""Node actions (``actions: [{when, if, then}]``) as plain data, and their conditions evaluated.

``when``: ``node-starting`` (before the node starts), ``node-complete`` (after it succeeded: ran,
reused or pinned), ``node-error`` (after it failed). ``if``: expressions over ``metadata.<key>`` (the
JSON lines the node printed; a reused node's recorded metadata) and ``parameter.<name>``, all of
which must hold; none means always. ``then``: ``stop-pipeline``, ``error-pipeline``,
``require-approval`` or ``noop``. Conditions are evaluated with leval's ``CommonBooleanEvaluator``,
the evaluator of valohai-yaml's own library (dashes in names, weak typing). Pure code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from leval.extras.common_boolean_evaluator import CommonBooleanEvaluator
from valohai_yaml.objs.pipelines.node import Node


class When(Enum):
    STARTING = "node-starting"
    COMPLETE = "node-complete"
    ERROR = "node-error"


class Then(Enum):
    STOP = "stop-pipeline"
    ERROR = "error-pipeline"
    APPROVAL = "require-approval"
    NOOP = "noop"


@dataclass(frozen=True)
class Action:
    when: frozenset[When]
    conditions: tuple[str, ...]
    then: tuple[Then, ...]

    def describe(self) -> str:
        cond = " and ".join(f"`{c}`" for c in self.conditions) or "always"
        whens = ", ".join(sorted(w.value for w in self.when))
        return f"when {whens}, if {cond}, then {', '.join(t.value for t in self.then)}"


class ActionError(ValueError):
    """An action whose condition is not an expression."""


def node_actions(node: Node) -> tuple[tuple[Action, ...], list[str]]:
    """The node's actions this product applies, and words for what it cannot (unknown when/then)."""
    actions: list[Action] = []
    unknown: list[str] = []
    evaluator = CommonBooleanEvaluator()
    for raw in node.actions:
        whens = frozenset(When(w) for w in raw.when if w in {x.value for x in When})
        thens = tuple(Then(t) for t in raw.then if t in {x.value for x in Then})
        unknown += [f"when {w!r}" for w in sorted(raw.when) if w not in {x.value for x in When}]
        unknown += [f"then {t!r}" for t in raw.then if t not in {x.value for x in Then}]
        for condition in raw.if_:
            try:
                evaluator.verify(condition)
            except Exception as exc:
                raise ActionError(f"action condition {condition!r} is not an expression: {exc}") from None
        if whens and thens:
            actions.append(Action(whens, tuple(raw.if_), thens))
    return tuple(actions), unknown


def values(metadata: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], Any] = {("metadata", k): v for k, v in metadata.items()}
    for name, value in parameters.items():
        found[("parameter", name)] = value
        found[("parameters", name)] = value
    return found


def holds(
    action: Action, candidates: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]
) -> tuple[bool, str]:
    """Whether every condition holds for one of ``candidates`` ((metadata, parameters) of the node, or of
    each of a task node's variants), and why, in words. A value the node did not print or set makes
    the condition false."""
    if not action.conditions:
        return True, action.then[0].value
    evaluator = CommonBooleanEvaluator()
    problems: list[str] = []
    for metadata, parameters in candidates:
        known = values(metadata, parameters)
        try:
            if all(evaluator.evaluate(c, known) for c in action.conditions):
                return True, f"{action.then[0].value}: {' and '.join(action.conditions)}"
        except Exception as exc:
            problems.append(str(exc))
    why = f" ({problems[0]})" if problems else ""
    return False, f"{' and '.join(action.conditions)} does not hold{why}"


def firing(
    actions: Iterable[Action],
    when: When,
    candidates: list[tuple[Mapping[str, Any], Mapping[str, Any]]],
    kinds: tuple[Then, ...] = (Then.STOP, Then.ERROR, Then.NOOP),
) -> list[tuple[Then, str]]:
    """(what, why) for each action of ``kinds`` that fires at ``when``."""
    fired: list[tuple[Then, str]] = []
    for action in actions:
        if when not in action.when:
            continue
        wanted = [t for t in action.then if t in kinds]
        if not wanted:
            continue
        ok, why = holds(action, candidates)
        if ok:
            fired += [(t, why if why.startswith(t.value) else f"{t.value}: {why}") for t in wanted]
    return fired


def approvals(actions: Iterable[Action]) -> dict[When, list[Action]]:
    """The node's require-approval actions by when (node-starting, node-complete)."""
    found: dict[When, list[Action]] = {}
    for action in actions:
        if Then.APPROVAL in action.then:
            for when in action.when & {When.STARTING, When.COMPLETE}:
                found.setdefault(when, []).append(action)
    return found


def stops(actions: Iterable[Action]) -> bool:
    return any(t in (Then.STOP, Then.ERROR) for a in actions for t in a.then)
