"""What the DAG stores of valohai.yaml, with the values of secret-named items kept out: its documentation
(the YAML with those values masked) and a task node's variants (secret values as references).

The documentation is stored in Airflow's metadata database (the serialized DAG) and shown to every
reader of the DAG, so a value named like a secret (``secret_env_patterns``: an environment variable's
default such as ``MY_API_TOKEN``, a parameter's such as ``db_password``) is written as ``"***"``, as
Airflow's own redaction writes it. The text is composed by PyYAML only where a word of it could be a
secret's name: every other file is quoted as it is, at no cost to the DAG's build. A file whose words
name a secret but that PyYAML cannot compose is not quoted.

A task node's variants are its mapped task's expand input, stored there too: a secret parameter's
value in a variant is a reference that the node task, made from valohai.yaml when it runs, resolves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from airflow_valohai_reuse.pipeline.stepdef import is_secret

MASK = '"***"'
#: the keys of a named item (a parameter, an environment variable, a pipeline parameter) that hold
#: its values: masked where the item's name is a secret's
_VALUES = frozenset({"default", "value", "values", "choices", "rules", "min", "max"})
_WORD = re.compile(r"[^\s:'\"#,\[\]{}]+")


def masked_yaml(text: str, patterns: Iterable[str]) -> str | None:
    """``text`` with every value of a secret-named item (or a secret-named key's scalar) as ``"***"``;
    None where it names a secret but cannot be composed (then it is not quoted at all)."""
    patterns = tuple(patterns)
    if not any(is_secret(word, patterns) for word in set(_WORD.findall(text))):
        return text
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return None
    spans = sorted(set(_secret_spans(root, patterns)), reverse=True)
    for start, end in spans:
        text = text[:start] + MASK + text[end:]
    return text


def _secret_spans(node: yaml.Node | None, patterns: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    """Where the secret values under ``node`` are in the text (start, end): scalars only, so that a
    masked list stays a list."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _secret_spans(item, patterns)
    if not isinstance(node, yaml.MappingNode):
        return
    names = [v.value for k, v in node.value if getattr(k, "value", None) == "name"]
    secret_item = any(isinstance(n, str) and is_secret(n, patterns) for n in names)
    for key, value in node.value:
        name = str(getattr(key, "value", ""))
        if (secret_item and name in _VALUES) or (
            isinstance(value, yaml.ScalarNode) and is_secret(name, patterns)
        ):
            yield from _scalars(value)
        else:
            yield from _secret_spans(value, patterns)


def _scalars(node: yaml.Node) -> Iterator[tuple[int, int]]:
    if isinstance(node, yaml.ScalarNode):
        yield node.start_mark.index, node.end_mark.index
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _scalars(item)
    elif isinstance(node, yaml.MappingNode):
        for _, value in node.value:
            yield from _scalars(value)


#: the key of a secret variant value's reference in a task node's expand input: the variant's index
SECRET_VARIANT = "valohai-reuse-secret-variant"


def is_reference(value: object) -> bool:
    """Whether a variant value is a secret's reference (no parameter value is an object)."""
    return isinstance(value, dict) and set(value) == {SECRET_VARIANT}


def mask_variants(
    variants: list[dict[str, Any]], secret: Iterable[str]
) -> tuple[list[dict[str, Any]], tuple[dict[str, Any], ...]]:
    """A task node's variants as its mapped task's expand input holds them (stored in Airflow's metadata
    database), each value of a ``secret`` parameter replaced by a reference to the variant; and the
    secret values by variant index, which the node keeps (empty where there are none)."""
    names = set(secret)
    if not any(names & set(v) for v in variants):
        return variants, ()
    masked = [
        {k: ({SECRET_VARIANT: i} if k in names else v) for k, v in variant.items()}
        for i, variant in enumerate(variants)
    ]
    return masked, tuple({k: v for k, v in variant.items() if k in names} for variant in variants)
