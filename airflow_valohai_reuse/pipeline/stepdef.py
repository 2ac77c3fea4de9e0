"""A node's effective step: override merge, typed parameter values, rendered command.

Pure code over valohai-yaml objects; nothing here touches Docker, a database or Airflow.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from valohai_yaml.commands import join_command
from valohai_yaml.excs import ValidationErrors
from valohai_yaml.objs import Parameter, Step
from valohai_yaml.objs.pipelines.override import Override

from airflow_valohai_reuse.errors import ParameterError

# Step fields that cannot change what a successful execution produced.
_COSMETIC_STEP_FIELDS = ("description", "icon", "category", "upload-store", "time-limit", "no-output-timeout")
# Fields that belong to another fingerprint component (environment, inputs by content, values).
_ELSEWHERE_STEP_FIELDS = (
    "image",
    "environment",
    "resources",
    "environment-variables",
    "runtime-config-preset",
    "autorestart",
    "outputs",
)
_COSMETIC_ITEM_FIELDS = ("description", "category", "widget")

DEFAULT_SECRET_PATTERNS = ("*SECRET*", "*PASSWORD*", "*PASSWD*", "*TOKEN*", "*CREDENTIAL*", "*API_KEY*")


def _merge_items(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge override items onto step items by name, keeping the step's fields not restated."""
    merged = {name: copy.deepcopy(item) for name, item in base.items()}
    for name, item in overrides.items():
        explicit = getattr(item, "_original_data", None)
        if name in merged and isinstance(explicit, dict):
            target = merged[name]
            for key, value in explicit.items():
                attr = key.replace("-", "_")
                if attr != "name" and hasattr(target, attr):
                    setattr(target, attr, value)
            if isinstance(target, Parameter) and target.multiple and "default" in explicit:
                target.default = (
                    list(target.default) if isinstance(target.default, list) else [target.default]
                )
        else:
            merged[name] = copy.deepcopy(item)
    return merged


def effective_step(step: Step, override: Override | None) -> Step:
    """The step a node runs: its definition with the node's ``override`` applied.

    Unlike valohai-yaml's template merge, an overridden parameter keeps its declared type and
    pass-as; only the fields the override states are replaced.
    """
    result = copy.deepcopy(step)
    if override is None:
        return result
    for attr in ("image", "command", "environment", "runtime_config_preset"):
        value = getattr(override, attr)
        if value:
            setattr(result, attr, value)
    if override.mounts:
        result.mounts = copy.deepcopy(override.mounts)
    result.parameters = _merge_items(step.parameters, override.parameters)
    result.inputs = _merge_items(step.inputs, override.inputs)
    result.environment_variables = _merge_items(step.environment_variables, override.environment_variables)
    return result


def _normalize_atom(parameter: Parameter, value: Any) -> Any:
    if parameter.type == "flag":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no", ""):
            return value.strip().lower() in ("true", "1", "yes")
        if isinstance(value, int):
            return bool(value)
        raise ParameterError(parameter.name, value, "is not a flag value (true or false)")
    if parameter.type == "string" and not isinstance(value, str):
        if isinstance(value, (dict, list)):
            raise ParameterError(parameter.name, value, "is not a string")
        return str(value)
    return value


def normalize_value(parameter: Parameter, value: Any) -> Any:
    """One parameter's value as the step will see it: typed, validated, lists for ``multiple``."""
    if parameter.multiple:
        atoms = value if isinstance(value, (list, tuple)) else [value]
        value = [_normalize_atom(parameter, atom) for atom in atoms]
    else:
        value = _normalize_atom(parameter, value)
    if parameter.type == "flag":
        return value
    try:
        return parameter.validate(value)
    except ValidationErrors as exc:
        raise ParameterError(parameter.name, value, "; ".join(str(e) for e in exc.errors)) from None


def resolve_parameters(
    step: Step, given: Mapping[str, Any], secret_patterns: Iterable[str] = ()
) -> dict[str, Any]:
    """Effective parameter values: defaults, then ``given``; optional unset parameters are left out.
    A refused value of a parameter named like a secret (``secret_patterns``) is not quoted."""
    try:
        return _resolve_parameters(step, given)
    except ParameterError as exc:
        if exc.value is not None and is_secret(exc.name, secret_patterns):
            raise exc.hidden() from None
        raise


def _resolve_parameters(step: Step, given: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(step.parameters))
    if unknown:
        raise ParameterError(unknown[0], given[unknown[0]], f"is not a parameter of step {step.name!r}")
    values: dict[str, Any] = {}
    for name, parameter in step.parameters.items():
        value = given.get(name, parameter.default)
        if value is None or value == []:
            if parameter.type == "flag":
                values[name] = False
            elif not parameter.optional:
                raise ParameterError(name, None, "is required but has no value and no default")
            continue
        values[name] = normalize_value(parameter, value)
    return values


#: How the container runs the script, as Valohai runs a step's commands: one script in one shell
#: (an ``export`` or ``source`` in one command holds for the next ones), its status the last
#: command's; bash where the image has it, else ``/bin/sh``; a script that starts with a shebang
#: line (``#!/bin/bash``, which valohai-yaml keeps as its first line) runs as a file by that
#: interpreter. The script is ``$1``; ``exec`` leaves the shell as the container's PID 1, so a stop
#: reaches it as before.
SHELL_ENTRYPOINT = [
    "/bin/sh",
    "-c",
    'case "$1" in "#!"*) d="${TMPDIR:-/tmp}"; mkdir -p "$d" && printf "%s\\n" "$1" > "$d/valohai-command"'
    ' && chmod +x "$d/valohai-command" && exec "$d/valohai-command";; esac;'
    ' if command -v bash >/dev/null 2>&1; then exec bash -c "$1"; fi; exec /bin/sh -c "$1"',
    "valohai-command",
]


def render_script(step: Step, parameters: Mapping[str, Any]) -> str:
    """The script the container runs (:data:`SHELL_ENTRYPOINT`): the commands one per line, as
    valohai-yaml's ``join_command`` joins them, a leading shebang line kept first."""
    values = {name: parameters.get(name) for name in step.parameters}
    return join_command(step.build_command(values), "\n")


def _item_data(item: Any, drop: Iterable[str]) -> dict[str, Any]:
    data = item.serialize() if hasattr(item, "serialize") else item
    data = dict(data) if isinstance(data, Mapping) else {"value": data}
    for key in drop:
        data.pop(key, None)
    return _jsonable(data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "value"):  # enums
        return _jsonable(value.value)
    if hasattr(value, "serialize"):
        return _jsonable(value.serialize())
    return str(value)


def step_component(step: Step) -> dict[str, Any]:
    """The step definition as it matters to results: cosmetic and value fields left out."""
    data = dict(step.serialize())
    for key in (*_COSMETIC_STEP_FIELDS, *_ELSEWHERE_STEP_FIELDS, "parameters", "inputs"):
        data.pop(key, None)
    if isinstance(data.get("command"), str):
        data["command"] = [data["command"]]
    data["parameters"] = {
        name: _item_data(p, ("default", "optional", *_COSMETIC_ITEM_FIELDS))
        for name, p in step.parameters.items()
    }
    data["inputs"] = {
        name: _item_data(i, ("default", "optional", "download", *_COSMETIC_ITEM_FIELDS))
        for name, i in step.inputs.items()
    }
    if _renders_all_parameters(data["command"]):
        # The encoding sorts keys; ``{parameters}`` renders in declaration order, so keep it.
        data["parameter-order"] = list(step.parameters)
    return _jsonable(data)


def _renders_all_parameters(command: Any) -> bool:
    lines = command if isinstance(command, list) else [command]
    return any("{parameters}" in line or "{params}" in line for line in lines if isinstance(line, str))


def is_secret(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name.upper(), pattern.upper()) for pattern in patterns)


def environment_values(step: Step, given: Mapping[str, str | None]) -> dict[str, str]:
    """Environment variables of the step: declared defaults, then ``given`` (edges, node settings)."""
    values = {
        name: var.default for name, var in step.environment_variables.items() if var.default is not None
    }
    values.update({k: v for k, v in given.items() if v is not None})
    return {name: str(value) for name, value in values.items()}


def secret_hash(name: str, value: Any) -> str:
    """A secret's stand-in in a fingerprint: a salted sha256, so a rotation is a change, while the
    value itself never reaches the cache, an XCom or a log."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"valohai-reuse secret\0{name}\0{text}".encode()).hexdigest()


def parameters_component(parameters: Mapping[str, Any], secret_patterns: Iterable[str]) -> dict[str, Any]:
    """Effective parameter values; a parameter named like a secret is kept as its salted hash."""
    patterns = tuple(secret_patterns)
    return {
        name: {"secret-sha256": secret_hash(name, value)} if is_secret(name, patterns) else value
        for name, value in parameters.items()
    }


def public_values(values: Mapping[str, Any], secret_patterns: Iterable[str]) -> dict[str, Any]:
    """Values that may be published (XCom, cache metadata, logs): secret-named ones left out."""
    patterns = tuple(secret_patterns)
    return {name: value for name, value in values.items() if not is_secret(name, patterns)}


def environment_component(
    step: Step,
    variables: Mapping[str, str],
    secret_patterns: Iterable[str],
    fingerprinted_secrets: Iterable[str] = (),
) -> dict[str, Any]:
    """Environment slug, resources and the non-secret variables. Secrets never enter it, except as
    salted hashes of those a step opts in with ``fingerprint-secrets`` (its output depends on them)."""
    patterns = tuple(secret_patterns)
    component: dict[str, Any] = {
        "environment": step.environment,
        "runtime-config-preset": step.runtime_config_preset,
        "resources": _jsonable(step.resources.get_data() or {}),
        "variables": public_values(dict(sorted(variables.items())), patterns),
    }
    opted = {
        name: secret_hash(name, variables[name])
        for name in sorted(set(fingerprinted_secrets))
        if name in variables and is_secret(name, patterns)
    }
    if opted:
        component["secrets-sha256"] = opted
    return component
