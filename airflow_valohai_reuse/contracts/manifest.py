"""A published result's outputs by reference: an execution with many outputs whose record is in the
cache database is published with ``outputs_manifest`` (its id, the count, the sha256 of the list as
the database keeps it) instead of the list, which readers put back (:func:`with_outputs`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_valohai_reuse.errors import OutputError

#: an execution with more outputs than this that the cache database holds is published with its outputs
#: referenced (``outputs_manifest``) instead of listed: its XCom and run-ledger row stay small
INLINE_OUTPUTS = 100
#: the key of a published value whose outputs are referenced
MANIFEST_KEY = "outputs_manifest"


def outputs_text(outputs: Sequence[Mapping[str, Any]]) -> str:
    """An output list as the cache database keeps it: sorted-key JSON."""
    return json.dumps(list(outputs), sort_keys=True)


def text_checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: execution id → (the sha256 of its kept output list's text, that list)
KeptOutputs = Mapping[str, tuple[str, list[dict[str, Any]]]]


def with_outputs(value: Mapping[str, Any], kept: KeptOutputs) -> dict[str, Any]:
    """A published value with its referenced outputs in place, from ``kept`` (what the execution's
    record holds); raises :class:`OutputError` where they are not the ones referenced."""
    manifest = value.get(MANIFEST_KEY)
    if not isinstance(manifest, Mapping):
        return dict(value)
    execution_id = manifest.get("execution_id")
    checksum, outputs = kept.get(execution_id, (None, None))  # type: ignore[arg-type]
    if outputs is None:
        raise OutputError(
            f"the {manifest.get('count')} outputs of execution {execution_id} are referenced by its "
            "published result, and the cache database does not hold them (unreachable, or the "
            "execution was removed)"
        )
    if len(outputs) != manifest.get("count") or checksum != manifest.get("sha256"):
        raise OutputError(
            f"the outputs the cache database holds for execution {execution_id} are not the ones published"
        )
    found = {k: v for k, v in value.items() if k != MANIFEST_KEY}
    found["outputs"] = list(outputs)
    return found


def referenced(value: Mapping[str, Any]) -> str | None:
    """The execution whose record holds a published value's outputs, where they are referenced."""
    manifest = value.get(MANIFEST_KEY)
    return manifest.get("execution_id") if isinstance(manifest, Mapping) else None


def refuse_unread(value: Mapping[str, Any]) -> None:
    """Refuse a published value whose referenced outputs were not put back: read as it is, it would
    list no outputs."""
    if MANIFEST_KEY in value:
        raise OutputError(
            f"the outputs of execution {referenced(value)} were not read from the cache database"
        )
