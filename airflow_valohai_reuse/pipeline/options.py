"""The run options every pipeline DAG has besides its pipeline parameters, as JSON Schemas.

The schemas name the pipeline's nodes, so Airflow refuses a trigger that names a node the pipeline
lacks (HTTP 400 from the REST API, a warning in the trigger form) before a run exists; the same
schemas check ``valohai-reuse plan --conf``. A type that includes ``"null"`` keeps the trigger form
from marking a field required: null means the default.

What a schema cannot say is refused at trigger time too (:func:`refusal`, which the plugin's API server
middleware asks): a conf key that is neither a Param nor a run option (Airflow keeps it and the run
ignores it, so a typo such as ``reuse_execution`` would do the opposite of what was asked), and a value
a node would refuse.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_valohai_reuse.errors import ParameterError
from airflow_valohai_reuse.pipeline.stepdef import is_secret, normalize_value

#: in a pipeline parameter's Param schema: the step parameters it sets, ``{"node", "parameter"}`` (the
#: declaration as valohai-yaml serializes it, its default left out), so that the trigger refuses what
#: the nodes would (an integer given as 3.0, a value outside min/max or the choices); JSON Schema
#: ignores a keyword it does not know
TARGETS = "x-valohai-targets"

REUSE_EXECUTIONS = "reuse_executions"
REUSE_NODES = "reuse_nodes"
REUSE_FROM_RUN = "reuse_from_run"
NAMES = (REUSE_EXECUTIONS, REUSE_NODES, REUSE_FROM_RUN)


@dataclass(frozen=True)
class Option:
    """One run option: its default and its JSON Schema (``title`` and ``description`` included)."""

    default: Any
    schema: dict[str, Any]


def options(nodes: Iterable[str], reuse_default: bool) -> dict[str, Option]:
    """The run options of a pipeline with these node names (execution and task nodes)."""
    names = sorted(nodes)
    return {
        REUSE_EXECUTIONS: Option(
            bool(reuse_default),
            {
                "type": ["boolean", "null"],
                "title": "Reuse executions",
                "description": "Reuse the outputs of identical past executions instead of running "
                f"(the pipeline's reuse-executions: {str(bool(reuse_default)).lower()}).",
            },
        ),
        REUSE_NODES: Option(
            {},
            {
                "type": ["object", "null"],
                "title": "Reuse nodes (by execution id)",
                "description": 'Pin nodes to past executions: {"node name": "execution id"}. A pinned '
                "node publishes that execution without running, even with reuse off. Nodes: "
                + ", ".join(names),
                "propertyNames": {"enum": names},
                "additionalProperties": {"type": "string", "minLength": 1},
            },
        ),
        REUSE_FROM_RUN: Option(
            {},
            {
                "type": ["object", "null"],
                "title": "Reuse nodes from an earlier run",
                "description": 'Reuse what chosen nodes published in an earlier run of this DAG: {"run_id": '
                '"<run id>", "nodes": ["node name", ...]}. Each named node publishes the execution it '
                "had in that run, without running, whatever reuse_executions says. Nodes: "
                + ", ".join(names),
                "properties": {
                    "run_id": {"type": "string", "minLength": 1},
                    "nodes": {"type": "array", "items": {"enum": names}, "uniqueItems": True},
                },
                "additionalProperties": False,
                "dependentRequired": {"run_id": ["nodes"], "nodes": ["run_id"]},
            },
        ),
    }


def reuse_on(params: Mapping[str, Any], default: bool) -> bool:
    """``reuse_executions`` of a run; null (or absent) is the pipeline's default."""
    value = params.get(REUSE_EXECUTIONS)
    return bool(default) if value is None else bool(value)


def unknown_keys(conf: Mapping[str, Any] | None, known: Iterable[str]) -> list[str]:
    """Conf keys that are neither run options nor pipeline parameters: Airflow accepts and ignores
    them, so a typo such as ``reuse_execution`` would change nothing without a word."""
    names = set(known) | set(NAMES)
    return sorted(str(k) for k in (conf or {}) if k not in names)


def unknown_keys_warning(keys: list[str], known: Iterable[str]) -> str:
    return (
        f"conf key(s) {', '.join(map(repr, keys))} are neither run options nor pipeline parameters and "
        f"change nothing; the known keys are: {', '.join(sorted(set(known) | set(NAMES)))}"
    )


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name nearest ``key``, or nothing where none is near."""
    near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def target_problem(
    key: str, value: Any, targets: Iterable[Mapping[str, Any]], patterns: Iterable[str]
) -> str | None:
    """What a node would refuse in pipeline parameter ``key`` = ``value``: each target's declaration
    checked as the node checks it (:func:`~.stepdef.normalize_value`); a secret's value is not quoted."""
    from valohai_yaml.objs.parameter import Parameter

    if value is None:
        return None  # null: the default applies
    for target in targets:
        declared = dict(target["parameter"])
        try:
            normalize_value(Parameter.parse(declared), value)
        except ParameterError as exc:
            refused = exc.hidden() if is_secret(key, tuple(patterns)) else exc
            where = f"parameter {declared['name']!r} of node {target['node']!r}"
            return f"Invalid input for param {key}: {refused.problem} ({where} refuses it)"
    return None


def refusal(conf: Any, schemas: Mapping[str, Mapping[str, Any]], patterns: Iterable[str]) -> str | None:
    """Why a trigger of a pipeline DAG whose Params have these schemas must refuse ``conf``, in one
    line: a key that is neither a run option nor a pipeline parameter (Airflow would keep it and the
    run would ignore it), a value the schema refuses, or one a node would refuse. None: accepted."""
    if not isinstance(conf, Mapping):
        return None  # Airflow's own validation answers a conf that is not an object
    for key in conf:
        if key not in schemas:
            near = did_you_mean(key, schemas)
            return (
                f"conf key {key!r} is neither a run option nor a pipeline parameter{near}; "
                f"the keys are: {', '.join(sorted(schemas))}"
            )
    problems = check_conf(conf, {k: {n: v for n, v in s.items() if n != TARGETS} for k, s in schemas.items()})
    if problems:
        return problems[0]
    for key, value in conf.items():
        problem = target_problem(key, value, schemas[key].get(TARGETS, ()), patterns)
        if problem:
            return problem
    return None


def check_conf(conf: Mapping[str, Any], schemas: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What Airflow's trigger would refuse in ``conf``, one message per key (empty: accepted)."""
    from jsonschema import FormatChecker, validate
    from jsonschema.exceptions import ValidationError

    problems = []
    for key, schema in schemas.items():
        if key not in conf:
            continue
        try:
            validate(conf[key], dict(schema), format_checker=FormatChecker())
        except ValidationError as exc:
            problems.append(f"Invalid input for param {key}: {exc.message}")
    return problems
