"""Reading a valohai.yaml: every way it can be broken becomes one PipelineFileError naming the place."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from valohai_yaml import parse
from valohai_yaml.excs import ValidationError, ValidationErrors
from valohai_yaml.objs import Config
from valohai_yaml.validation import get_json_schema

from airflow_valohai_reuse.errors import PipelineFileError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _schema_problem(exc: ValidationErrors) -> tuple[str, str | None]:
    first = exc.errors[0]
    message = getattr(first, "message", str(first))
    path = list(getattr(first, "path", []) or [])
    if path and isinstance(path[0], int):
        path = [f"item {path[0] + 1}", *path[1:]]  # the list's items, counted from 1 as people do
    where = "/".join(str(p) for p in path) if path else None
    more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
    return f"schema: {message}{more}", where


@functools.cache
def validator() -> Draft202012Validator:
    """valohai-yaml's schema validator, built once per process (a Celery worker builds it before it
    forks task processes, each of which parses its DAG file).

    ``valohai_yaml.validate`` checks valohai-yaml's own schema against the JSON Schema metaschema
    once per process, and its reference registry, rebuilt for every top-level item, crawls the
    whole schema again each time: more than validating a 100-node pipeline costs. Here the packaged
    schema is used as it is and crawled once: the same errors, in the same order.
    """
    schema = get_json_schema()
    try:
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012
    except ImportError:  # jsonschema < 4.18 resolves references without a registry
        return Draft202012Validator(schema)
    resource = DRAFT202012.create_resource(schema)
    registry = Registry().with_resource(schema["$id"], resource).crawl()
    return Draft202012Validator(schema, registry=registry)


def _validate(data: list) -> None:
    errors = list(validator().iter_errors(data))
    if errors:
        raise ValidationErrors(errors)


def read_items(path: str | Path) -> object:
    """A valohai.yaml's YAML, not yet checked; PipelineFileError where it cannot be read or parsed."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_Loader)
    except OSError as exc:
        raise PipelineFileError(path, f"cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, path) from None


def config_of(data: object, path: str | Path) -> Config:
    """:func:`read_items`'s result validated and parsed, or PipelineFileError."""
    return _parse(data, str(path))


def declared_names(data: object) -> dict[str, set[str]] | None:
    """The names of the pipelines and steps (``{"pipeline": …, "step": …}``) in a valohai.yaml's YAML,
    not validated; None where it is not plainly a list of named items (parsing it says what is wrong)."""
    if not isinstance(data, list):
        return None
    names: dict[str, set[str]] = {"pipeline": set(), "step": set()}
    for item in data:
        for kind, found in names.items():
            if isinstance(item, dict) and kind in item:
                body = item[kind]
                if not (isinstance(body, dict) and isinstance(body.get("name"), str)):
                    return None
                found.add(body["name"])
    return names


def parse_config_text(text: str, label: str) -> Config:
    """Parse and validate a valohai.yaml given as text (another commit's); ``label`` names it in errors."""
    try:
        return _parse(yaml.load(text, Loader=_Loader), label)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, label) from None


def _syntax_error(exc: yaml.YAMLError, path: str) -> PipelineFileError:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
    problem = getattr(exc, "problem", None) or str(exc)
    return PipelineFileError(path, f"YAML syntax: {problem}", where)


def _parse(data: object, path: str) -> Config:
    if data is None:
        data = []
    if not isinstance(data, list):
        raise PipelineFileError(path, f"the top level must be a list of items, not {type(data).__name__}")
    try:
        _validate(data)
        return parse(data, validate=False)
    except ValidationErrors as exc:
        problem, where = _schema_problem(exc)
        raise PipelineFileError(path, problem, where) from None
    except (ValidationError, TypeError, ValueError) as exc:
        raise PipelineFileError(path, str(exc) + _hint(str(exc))) from None


def _hint(message: str) -> str:
    if "specifier" in message and "must have 3 parts" in message:
        return " (an edge's ends are node.type.key, e.g. train.output.model.pkl or test.input.model)"
    if "Malformed edge shorthand" in message:
        return " (a short edge is a list of two ends: [train.output.model.pkl, test.input.model])"
    return ""
