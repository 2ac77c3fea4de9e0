"""The line of a valohai.yaml that a PipelineFileError is about, so an import error reads as a compiler's
does (``path:line: problem``) and an editor jumps to it.

The error names a place as words (``item 2/step``, ``pipeline p``, ``line 3, column 1``) and its problem
names the node, edge, parameter or step; this finds the line of the most precise of them in the file's
YAML nodes (PyYAML's composer keeps each node's line), or None where the words name no line.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_LINE = re.compile(r"^line (\d+)")
_ITEM = re.compile(r"^item (\d+)")
_PIPELINE = re.compile(r"^pipeline (.+)$")
_EDGE = re.compile(r"edge (\S+) \u2192 (\S+?):?(?:\s|$)")
_NODE = re.compile(r"node '([^']+)'")
_PARAMETER = re.compile(r"pipeline parameter '([^']+)'")
_STEP = re.compile(r"^valohai-yaml's linter: Step (\S+),")
_LINTED_NODE = re.compile(r'Pipeline "([^"]+)" node "([^"]+)"')


def _get(node: Node, key: str) -> Node | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return v
    return None


def _named(items: Node | None, name: str) -> Node | None:
    """The mapping of a list whose ``name`` is ``name``."""
    if isinstance(items, SequenceNode):
        for item in items.value:
            found = _get(item, "name")
            if isinstance(found, ScalarNode) and found.value == name:
                return item
    return None


def _item(root: Node, kind: str, name: str) -> Node | None:
    """The body of the top-level ``kind`` item (step, pipeline) called ``name``."""
    for item in root.value if isinstance(root, SequenceNode) else []:
        body = _get(item, kind)
        found = _get(body, "name") if body is not None else None
        if isinstance(found, ScalarNode) and found.value == name:
            return body
    return None


def _edge(pipeline: Node, source: str, target: str) -> Node | None:
    edges = _get(pipeline, "edges")
    for edge in edges.value if isinstance(edges, SequenceNode) else []:
        if isinstance(edge, SequenceNode):  # the short form: [source, target]
            ends = [v.value for v in edge.value if isinstance(v, ScalarNode)]
        else:
            ends = [getattr(_get(edge, key), "value", None) for key in ("source", "target")]
        if ends[:2] == [source, target]:
            return edge
    return None


def _in_pipeline(pipeline: Node, problem: str) -> Node:
    """The most precise node of a pipeline the problem names: an edge, a parameter, a node."""
    if edge := _EDGE.search(problem):
        found = _edge(pipeline, *edge.groups())
        if found is not None:
            return found
    if parameter := _PARAMETER.search(problem):
        return _named(_get(pipeline, "parameters"), parameter.group(1)) or pipeline
    if node := _NODE.search(problem):
        return _named(_get(pipeline, "nodes"), node.group(1)) or pipeline
    return pipeline


def _find(root: Node, where: str, problem: str) -> Node | None:
    if item := _ITEM.match(where):
        index = int(item.group(1)) - 1
        items = root.value if isinstance(root, SequenceNode) else []
        return items[index] if 0 <= index < len(items) else None
    if pipeline := _PIPELINE.match(where):
        body = _item(root, "pipeline", pipeline.group(1))
        return _in_pipeline(body, problem) if body is not None else None
    if linted := _LINTED_NODE.search(problem):
        body = _item(root, "pipeline", linted.group(1))
        return _named(_get(body, "nodes"), linted.group(2)) if body is not None else None
    if step := _STEP.match(problem):
        return _item(root, "step", step.group(1))
    return None


def line_of(path: str | Path, where: str | None, problem: str) -> int | None:
    """The 1-based line of ``path`` that an error at ``where`` with ``problem`` is about."""
    where = where or ""
    if line := _LINE.match(where):
        return int(line.group(1))
    try:
        root = yaml.compose(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    found = _find(root, where, problem) if root is not None else None
    return found.start_mark.line + 1 if found is not None else None
