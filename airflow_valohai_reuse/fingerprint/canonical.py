"""The one canonical encoding: sorted-key compact JSON, hashed with sha256."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any


class UnencodableValue(TypeError):
    """A value that has no canonical form; the message names where it sits."""


def _check(value: Any, path: str) -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnencodableValue(f"{path}: non-finite float {value!r} has no canonical form")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnencodableValue(f"{path}: key {key!r} is not a string")
            _check(item, f"{path}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
        return
    raise UnencodableValue(f"{path}: value of type {type(value).__name__} has no canonical form")


def canonical_json(value: Any, *, path: str = "$") -> str:
    """Encode ``value`` as sorted-key compact JSON; anything else is an error naming its path."""
    _check(value, path)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def digest(value: Any, *, path: str = "$") -> str:
    """sha256 hex digest of the canonical encoding of ``value``.

    File names that are not valid UTF-8 reach here as lone surrogates (``os`` decodes them with
    ``surrogateescape``); ``surrogatepass`` encodes them injectively, and valid text as UTF-8.
    """
    return hashlib.sha256(canonical_json(value, path=path).encode("utf-8", "surrogatepass")).hexdigest()
