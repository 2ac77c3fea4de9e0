"""Step settings a node accepts but does not apply here, in words for the DAG's documentation.

Valohai runs executions on machines it provisions; here a node is one container on the worker's Docker
daemon. What only Valohai's machines or organisation have (environments, presets, host mounts of
private environments, organisation-level variable groups, spot restarts) is not applied, and the
DAG's documentation says so per step rather than leaving it unsaid.
"""

from __future__ import annotations

from collections.abc import Iterable

from valohai_yaml.objs import Step

_FIELDS = (
    ("stop_condition", "`stop-condition` {value!r} is not applied: the execution runs to its end"),
    (
        "mounts",
        "`mounts` are not mounted: host mounts of Valohai's private environments have no meaning on "
        "the worker's Docker daemon",
    ),
    (
        "environment_variable_groups",
        "`environment-variable-groups` {value} are Valohai organisation "
        "settings and are not read: give those variables in the step's `environment-variables`",
    ),
    ("cache_volumes", "`cache-volumes` (Kubernetes volume claims) are not mounted"),
    (
        "no_output_timeout",
        "`no-output-timeout` is not applied (`time-limit` is, as the task's execution timeout)",
    ),
    ("upload_store", "`upload-store` {value!r} is not used: outputs go to `[valohai_reuse] artifact_store`"),
    (
        "runtime_config_preset",
        "`runtime-config-preset` {value!r} is a Valohai machine setting and is not applied",
    ),
    ("autorestart", "`autorestart` (spot instances) is not applied"),
    (
        "environment",
        "`environment` {value!r} chooses no machine: the node runs on the worker's Docker "
        "daemon; the slug still counts in the fingerprint",
    ),
)


def step_notes(steps: Iterable[Step]) -> list[str]:
    """One note per step setting that is not applied, each step once."""
    notes: list[str] = []
    seen: set[str] = set()
    for step in steps:
        if step.name in seen:
            continue
        seen.add(step.name)
        for attr, words in _FIELDS:
            value = getattr(step, attr, None)
            if value:
                shown = (
                    ", ".join(value)
                    if isinstance(value, list) and all(isinstance(v, str) for v in value)
                    else value
                )
                notes.append(f"step {step.name!r}: " + words.format(value=shown))
        notes += _unfetchable(step)
        on_demand = [
            name for name, i in step.inputs.items() if getattr(i.download, "value", None) == "on-demand"
        ]
        if on_demand:
            notes.append(
                f"step {step.name!r}: inputs {', '.join(on_demand)} are `download: on-demand` on Valohai; "
                "here they are placed before the step starts, like the others"
            )
    return notes


_FETCHED = ("", "file", "http", "https", "s3")


def _unfetchable(step: Step) -> list[str]:
    """Inputs whose default URIs name a store only Valohai reaches (``dataset://``, ``datum://``,
    ``gs://``, ``azure://``…): the node fails to fetch them unless an edge replaces them."""
    notes = []
    for name, spec in step.inputs.items():
        defaults = spec.default if isinstance(spec.default, list) else [spec.default]
        schemes = sorted({d.split("://", 1)[0] for d in defaults if d and "://" in d} - set(_FETCHED))
        if schemes:
            notes.append(
                f"step {step.name!r}: input {name!r} defaults to {', '.join(s + '://' for s in schemes)} "
                "URIs, which only Valohai can fetch: the node fails at run time unless an edge replaces "
                "them (edge-merge-mode replace) or the input is given as a project path, file://, "
                "http(s):// or s3:// URI"
            )
    return notes
