"""A pipeline DAG's Params as plain data: the run options, then the pipeline parameters, each with its
default and JSON Schema.

The factory makes the DAG's Params from them, the API server's middleware checks a trigger's conf
against the schemas they become, and ``valohai-reuse plan --conf`` checks with the very same schemas,
so a plan refuses exactly what a trigger refuses.

A Param's default is stored in Airflow's metadata database (the serialized DAG) and shown in the
trigger form, so the default of a secret pipeline parameter (its name, or a step parameter it sets,
matches ``secret_env_patterns``) is not written there: its Param's default is null, and a node given
null takes the valohai.yaml default itself (:attr:`~.spec.NodeSpec.pipeline_defaults`).
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow_valohai_reuse.pipeline.options import TARGETS, Option, options
from airflow_valohai_reuse.pipeline.stepdef import is_secret

if TYPE_CHECKING:
    from airflow_valohai_reuse.pipeline.analysis import Analysis

#: what a secret pipeline parameter's description adds, in place of its default
WITHHELD = "A secret: its valohai.yaml default is not shown here and applies when this is left empty."


def dag_params(a: Analysis, patterns: Iterable[str]) -> dict[str, Option]:
    """The run options, then the pipeline parameters: each with a title, a description and a JSON
    Schema type that includes null (so the trigger form marks none required; null is the default)."""
    found = dict(options(a.task_ids, bool(a.pipeline.reuse_executions)))
    hidden = secret_params(a, patterns)
    for name, p in a.params.items():
        schema: dict[str, Any] = {"title": name, "description": p.description}
        if p.type:
            schema["type"] = p.type
        schema[TARGETS] = _targets(a, name)
        if name in hidden:
            schema["description"] = f"{p.description.rstrip('.')}. {WITHHELD}"
            found[name] = Option(None, schema)
        else:
            found[name] = Option(p.default, schema)
    return found


def secret_params(a: Analysis, patterns: Iterable[str]) -> frozenset[str]:
    """Pipeline parameters whose value is a secret's: their name, or a step parameter they set, matches
    ``patterns``."""
    patterns = tuple(patterns)
    hidden = {name for name in a.params if is_secret(name, patterns)}
    for by_param in a.targets.values():
        for name, parameters in by_param.items():
            if any(is_secret(parameter, patterns) for parameter in parameters):
                hidden.add(name)
    return frozenset(hidden & set(a.params))


def doc_patterns(a: Analysis, patterns: Iterable[str]) -> tuple[str, ...]:
    """``patterns`` and the names of the pipeline's secret parameters: what its documentation masks."""
    patterns = tuple(patterns)
    return (*patterns, *(glob.escape(name) for name in sorted(secret_params(a, patterns))))


def _targets(a: Analysis, name: str) -> list[dict[str, Any]]:
    """The step parameters pipeline parameter ``name`` sets, declared as the nodes check them (the
    trigger refuses what they would refuse; :data:`~.options.TARGETS`)."""
    found = []
    for node, by_param in a.targets.items():
        for parameter in by_param.get(name, ()):
            declared = a.steps[node].parameters.get(parameter) if node in a.steps else None
            if declared is not None:
                data = {k: v for k, v in declared.serialize().items() if k not in ("default", "description")}
                found.append({"node": node, "parameter": data})
    return found
