"""YAML as the DAG's documentation quotes it, with the values of secret-named items masked.

The documentation is stored in Airflow's metadata database (the serialized DAG) and shown to every
reader of the DAG, so a value named like a secret (``secret_env_patterns``: an environment variable's
default such as ``MY_API_TOKEN``, a parameter's such as ``db_password``) is written as ``"***"``, as
Airflow's own redaction writes it. The text is composed by PyYAML only where a word of it could be a
secret's name: every other file is quoted as it is, at no cost to the DAG's build. A file whose words
name a secret but that PyYAML cannot compose is not quoted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

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
