"""A pipeline drawn as its run's Reuse tab shows it: nodes in topological columns (a node one column
right of its furthest upstream), edges as curves between them, each node with its badge (reused, ran,
pinned, failed, ...), as Valohai's pipeline view shows reuse.

Pure geometry: the template draws it as inline SVG, so the page needs no script. Nodes keep the
pipeline's order within a column, moved next to their upstreams' rows so edges cross less.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 184, 58, 64, 18, 8


@dataclass(frozen=True)
class Box:
    name: str
    x: float
    y: float
    column: int
    row: int
    badge: str = ""
    #: the second line: the step, and where a reused node's execution came from
    detail: str = ""
    #: the node's one execution (its page is linked), None for none or a task node's several
    execution: str | None = None
    width: float = BOX_W
    height: float = BOX_H


@dataclass(frozen=True)
class Line:
    source: str
    target: str
    path: str
    #: what the edge carries, as valohai.yaml writes it (output.x → input.y, ...)
    label: str = ""


@dataclass(frozen=True)
class Graph:
    boxes: list[Box]
    lines: list[Line]
    width: float
    height: float
    columns: int = field(default=0)


def columns(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Node → its column: 0 for a node without upstreams, else one more than its furthest upstream.
    Nodes on a cycle (which no DAG has) go after every other node instead of failing the page."""
    upstream: dict[str, set[str]] = {n: set() for n in nodes}
    for source, target in edges:
        if source in upstream and target in upstream and source != target:
            upstream[target].add(source)
    found: dict[str, int] = {}
    remaining = list(nodes)
    while remaining:
        ready = [n for n in remaining if upstream[n] <= found.keys()]
        if not ready:  # a cycle: place the rest after everything placed
            last = max(found.values(), default=-1) + 1
            found.update({n: last for n in remaining})
            break
        for n in ready:
            found[n] = 1 + max((found[u] for u in upstream[n]), default=-1)
        remaining = [n for n in remaining if n not in found]
    return found


def _rows(nodes: Sequence[str], column: Mapping[str, int], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each node's row in its column: the pipeline's order, moved by its upstreams' mean row."""
    order = {n: i for i, n in enumerate(nodes)}
    row: dict[str, int] = {}
    for c in range(max(column.values(), default=-1) + 1):
        here = [n for n in nodes if column[n] == c]

        def weight(n: str) -> tuple[float, int]:
            ups = [row[s] for s, t in edges if t == n and s in row]
            return (sum(ups) / len(ups) if ups else float(order[n]), order[n])

        row.update({n: i for i, n in enumerate(sorted(here, key=weight))})
    return row


def _curve(a: Box, b: Box) -> str:
    x1, y1 = a.x + a.width, a.y + a.height / 2
    x2, y2 = b.x, b.y + b.height / 2
    if b.column <= a.column:  # a back edge (only on a cycle): round the boxes' bottoms
        low = max(a.y, b.y) + a.height + GAP_Y / 2
        return f"M{x1:.0f},{y1:.0f} C{x1 + 40:.0f},{low:.0f} {x2 - 40:.0f},{low:.0f} {x2:.0f},{y2:.0f}"
    mid = (x1 + x2) / 2
    return f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"


def layout(
    nodes: Sequence[str],
    edges: Iterable[tuple[str, str, str]],
    badges: Mapping[str, str] | None = None,
    details: Mapping[str, str] | None = None,
    executions: Mapping[str, str] | None = None,
) -> Graph:
    """The graph of ``nodes`` (in the pipeline's order) and ``edges`` (source, target, label; several
    between one pair become one line with every label)."""
    badges, details, executions = badges or {}, details or {}, executions or {}
    labels: dict[tuple[str, str], list[str]] = {}
    for source, target, label in edges:
        if source in nodes and target in nodes:
            labels.setdefault((source, target), [])
            if label and label not in labels[(source, target)]:
                labels[(source, target)].append(label)
    pairs = list(labels)
    column = columns(nodes, pairs)
    row = _rows(nodes, column, pairs)
    boxes = {
        n: Box(
            n,
            PAD + column[n] * (BOX_W + GAP_X),
            PAD + row[n] * (BOX_H + GAP_Y),
            column[n],
            row[n],
            badges.get(n, ""),
            details.get(n, ""),
            executions.get(n),
        )
        for n in nodes
    }
    lines = [Line(s, t, _curve(boxes[s], boxes[t]), "; ".join(labels[(s, t)])) for s, t in pairs]
    count = max(column.values(), default=-1) + 1
    tallest = max(row.values(), default=-1) + 1
    width = 2 * PAD + count * BOX_W + max(count - 1, 0) * GAP_X
    height = 2 * PAD + tallest * BOX_H + max(tallest - 1, 0) * GAP_Y
    height += GAP_Y if _has_back_edge(lines, boxes) else 0  # room for the curve under the boxes
    return Graph([boxes[n] for n in nodes], lines, width, height, count)


def _has_back_edge(lines: list[Line], boxes: Mapping[str, Box]) -> bool:
    return any(boxes[line.target].column <= boxes[line.source].column for line in lines)


#: what a node's badge says, from what its task instances published or Airflow's state of them
FAILED_STATES = {"failed": "failed", "upstream_failed": "upstream failed", "skipped": "skipped"}


def badge(kinds: Sequence[str], state: str | None = None, refused: str | None = None) -> str:
    """A node's badge: its one kind (``reused``, ``ran``, ``pinned``), the count of each for a task
    node's variants that differ (``2 reused · 1 ran``), ``pin refused`` for a refused pin, else what
    Airflow says of a node that published nothing (``failed``, ``running``, ``not run yet``)."""
    if refused is not None and not kinds:
        return "pin refused"
    if kinds:
        counts: dict[str, int] = {}
        for kind in kinds:
            counts[kind] = counts.get(kind, 0) + 1
        if len(counts) == 1:
            kind, n = next(iter(counts.items()))
            return kind if n == 1 else f"{n} {kind}"
        return " \u00b7 ".join(f"{n} {kind}" for kind, n in counts.items())
    if state is None:
        return "not run yet"
    return FAILED_STATES.get(state, state.replace("_", " "))


def badge_class(text: str) -> str:
    """The CSS class of a badge: its colour says reused (green), ran (amber) or failed (red)."""
    if "refused" in text or "failed" in text:
        return "failed"
    words = set(text.replace("\u00b7", " ").split())
    if words & {"reused", "pinned"} and not words & {"ran"}:
        return "reused"
    if "ran" in words:
        return "ran"
    return "unknown"


def node_facts(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """A run's ledger rows by node (a task node's variants together)."""
    found: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        found.setdefault(r.get("node") or r["task_id"], []).append(r)
    return found
