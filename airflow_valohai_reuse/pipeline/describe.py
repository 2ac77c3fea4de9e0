"""A pipeline's documentation as the DAG shows it: the nodes, the edges, what differs from Valohai,
and the part of the valohai.yaml it comes from, as the user wrote it (comments included).

Building DAGs is paid on every task start (workers re-parse the DAG file), so the file's part is cut
out by its lines; only a file whose items that scan cannot tell apart is composed by PyYAML for them.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from valohai_yaml.objs.pipelines.task_node import TaskNode

from airflow_valohai_reuse.pipeline.analysis import Analysis
from airflow_valohai_reuse.pipeline.failures import rules_notes, run_rules
from airflow_valohai_reuse.pipeline.masked import masked_yaml
from airflow_valohai_reuse.pipeline.params import doc_patterns
from airflow_valohai_reuse.pipeline.unapplied import step_notes

_ITEM = re.compile(r"^-\s*([\w-]+)\s*:\s*(#.*)?$")
_KEY_NAME = re.compile(r"^\s*name\s*:\s*(.+?)\s*(?:\s#.*)?$")


def _chunks(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Top-level items of a block-style list: (kind, lines), comments just above an item with it.
    An item the scan does not understand (flow style) is kind ``?``."""
    chunks: list[tuple[str, list[str]]] = []
    pending: list[str] = []
    for line in lines:
        if line.startswith("-"):
            match = _ITEM.match(line)
            chunks.append((match.group(1) if match else "?", [*pending, line]))
            pending = []
        elif line.startswith("#") or not line.strip():
            pending.append(line)
        elif chunks:
            chunks[-1][1].extend([*pending, line])
            pending = []
    return chunks


def _name(chunk: list[str]) -> str | None:
    """The item's ``name``: the key at the indentation of the item's first key."""
    lines = [line for line in chunk if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) < 2:
        return None
    indent = len(lines[1]) - len(lines[1].lstrip())
    for line in lines[1:]:
        if len(line) - len(line.lstrip()) == indent and (match := _KEY_NAME.match(line)):
            return match.group(1).strip("'\"")
    return None


def _composed(text: str, wanted: set[tuple[str, str]]) -> list[str] | None:
    """The items by PyYAML's marks, for files the line scan cannot split (flow style, anchors…)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return None
    parts = []
    for item in getattr(root, "value", []):
        if not isinstance(item, yaml.MappingNode) or len(item.value) != 1:
            continue
        key, body = item.value[0]
        names = [v.value for k, v in getattr(body, "value", []) if getattr(k, "value", None) == "name"]
        if names and (key.value, str(names[0])) in wanted:
            parts.append("- " + text[item.start_mark.index : item.end_mark.index].rstrip())
    return parts


def yaml_part(a: Analysis) -> str | None:
    """The steps, task blueprints and pipeline block this pipeline is made of, as written."""
    wanted = {("pipeline", a.pipeline.name)}
    wanted |= {("step", step.name) for step in a.steps.values()}
    wanted |= {("task", n.task) for n in a.nodes.values() if isinstance(n, TaskNode) and n.task}
    try:
        text = Path(a.path).read_text(encoding="utf-8")
    except OSError:
        return None
    found = [(kind, _name(lines), lines) for kind, lines in _chunks(text.splitlines())]
    if wanted <= {(kind, name) for kind, name, _ in found}:
        return "\n".join("\n".join(lines).rstrip() for kind, name, lines in found if (kind, name) in wanted)
    parts = _composed(text, wanted)
    return "\n".join(parts) if parts else None


_ACTION_WORDS = (
    " (conditions read the node's metadata, a reused node's recorded metadata included, and its "
    "parameters; stop-pipeline skips what has not started and the run ends without error; "
    "error-pipeline fails the node task and the run; require-approval is an approval task in "
    "Airflow's Required actions, asked in every run, and a rejection stops the pipeline)"
)


def differences(a: Analysis) -> list[str]:
    """Where the DAG does not do what Valohai would, in words."""
    notes = list(a.notes)
    renamed = [f"{name!r} → `{task_id}`" for name, task_id in a.task_ids.items() if name != task_id]
    if renamed:
        outside = "task ids are node names with characters outside [A-Za-z0-9_.-] as `_`: "
        notes.append(outside + ", ".join(renamed))
    notes.append(
        f"`reuse-executions: {str(bool(a.pipeline.reuse_executions)).lower()}` is the default of the "
        "run option `reuse_executions`; a node is reused only when its fingerprint (step, code in its "
        "scope, parameters, input checksums, image ID, environment) equals a past successful execution's"
    )
    notes += rules_notes(run_rules(a))
    notes += [
        f"node {name!r}: action {action.describe()}" + _ACTION_WORDS
        for name, actions in a.actions.items()
        for action in actions
    ]
    notes += step_notes(a.steps.values())
    notes.append(
        "run options besides the pipeline parameters: `reuse_nodes` pins nodes to past executions by id; "
        "`reuse_from_run` reuses chosen nodes' executions from an earlier run of this DAG"
    )
    return notes


def _nodes_table(a: Analysis) -> list[str]:
    rows = ["| node | task id | type | step | image |", "| --- | --- | --- | --- | --- |"]
    for name, task_id in a.task_ids.items():
        kind = "task (one mapped task per variant)" if name in a.sweeps else "execution"
        step = a.steps[name]
        rows.append(f"| {name} | `{task_id}` | {kind} | {step.name} | `{step.image}` |")
    return rows


def _edges(a: Analysis) -> list[str]:
    if not a.pipeline.edges:
        return ["(none)"]
    kept = {(s, t) for s, t in a.deps}
    lines = []
    for edge in a.pipeline.edges:
        source, target = a.task_ids.get(edge.source_node), a.task_ids.get(edge.target_node)
        left_out = "" if (source, target) in kept else " (left out)"
        lines.append(f"- `{edge.source}` → `{edge.target}`{left_out}")
    return lines


def pipeline_doc(a: Analysis, secret_patterns: tuple[str, ...]) -> str:
    """The DAG's ``doc_md``; values named like secrets (``secret_patterns``) in its valohai.yaml are
    masked, since the documentation is stored in the metadata database and shown to every reader."""
    lines = [f"Pipeline **{a.pipeline.name}** from `{a.path}`.", "", "### Nodes", "", *_nodes_table(a)]
    lines += ["", "### Edges", "", *_edges(a)]
    lines += ["", "### Differences from Valohai", "", *[f"- {note}" for note in differences(a)]]
    part = yaml_part(a)
    part = masked_yaml(part, doc_patterns(a, secret_patterns)) if part is not None else None
    if part is not None:
        lines += ["", "### valohai.yaml", "", "```yaml", part, "```"]
    return "\n".join(lines)
