"""An execution's outputs from the pages: downloads and previews of small text, CSV and JSON files.

Only the configured artifact store's own files are served (a row of the cache database cannot make
the API server read another path or object). A local store's file is streamed through the plugin as
an attachment; an S3 object is reached through a presigned URL that expires after
:data:`PRESIGNED_S`. Previews read at most :data:`PREVIEW_BYTES` of at most :data:`MAX_PREVIEWS`
files of a page, and the page escapes what they show.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.contracts import ArtifactStore
from airflow_valohai_reuse.settings import load_settings
from airflow_valohai_reuse.stores.base import file_uri_path
from airflow_valohai_reuse.stores.registry import open_store
from airflow_valohai_reuse.stores.s3 import split

#: how long a presigned S3 URL of a download stays valid
PRESIGNED_S = 300
#: the largest file a page previews, and how many files of one page it previews
PREVIEW_BYTES = 64 * 1024
MAX_PREVIEWS = 10
#: rows of a CSV preview shown as a table
CSV_ROWS = 50
_KINDS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".txt": "text",
    ".log": "text",
    ".md": "text",
    ".jsonl": "text",
    ".yaml": "text",
    ".yml": "text",
    ".ini": "text",
    ".cfg": "text",
}


@dataclass(frozen=True)
class Preview:
    """``kind``: text, json (pretty-printed ``text``) or csv (``rows``)."""

    kind: str
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)
    more_rows: bool = False


def store() -> ArtifactStore:
    settings = load_settings()
    return open_store(settings.artifact_store, settings.aws_conn_id)


def local_path(artifacts: ArtifactStore, uri: str) -> Path | None:
    """The file of a local store's artifact; None for any other URI."""
    if artifacts.scheme != "file" or not artifacts.owns(uri):
        return None
    return file_uri_path(uri)


def presigned_url(artifacts: ArtifactStore, uri: str, filename: str) -> str | None:
    """A short-lived URL of an S3 store's artifact, downloaded as ``filename``; None for any other URI."""
    if artifacts.scheme != "s3" or not artifacts.owns(uri):
        return None
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    bucket, key = split(uri)
    disposition = f"attachment; filename*=UTF-8''{_quoted(filename)}"
    return S3Hook(aws_conn_id=getattr(artifacts, "conn_id", "aws_default")).generate_presigned_url(
        client_method="get_object",
        params={"Bucket": bucket, "Key": key, "ResponseContentDisposition": disposition},
        expires_in=PRESIGNED_S,
    )


def _quoted(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _read(artifacts: ArtifactStore, uri: str) -> bytes | None:
    path = local_path(artifacts, uri)
    if path is not None:
        with open(path, "rb") as handle:
            return handle.read(PREVIEW_BYTES + 1)
    if artifacts.scheme == "s3" and artifacts.owns(uri):
        bucket, key = split(uri)
        answer = artifacts.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{PREVIEW_BYTES}")  # type: ignore[attr-defined]
        return answer["Body"].read()
    return None


def preview_of(name: str, data: bytes) -> Preview | None:
    """What a page shows of a small file's bytes; None for a kind it does not preview or bytes that
    are not UTF-8 text."""
    kind = _KINDS.get(posixpath.splitext(name)[1].lower())
    if kind is None or len(data) > PREVIEW_BYTES:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if kind == "json":
        try:
            return Preview("json", json.dumps(json.loads(text), indent=2, ensure_ascii=False))
        except ValueError:
            return Preview("text", text)
    if kind == "csv":
        dialect = "excel-tab" if name.lower().endswith(".tsv") else "excel"
        rows = list(csv.reader(io.StringIO(text), dialect=dialect))
        return Preview("csv", rows=rows[:CSV_ROWS], more_rows=len(rows) > CSV_ROWS)
    return Preview("text", text)


def previews(artifacts: ArtifactStore, outputs: list[dict[str, Any]]) -> dict[str, Preview]:
    """Previews of a page's small text-like outputs, by output name (an unreadable one has none)."""
    found: dict[str, Preview] = {}
    for output in outputs:
        if len(found) >= MAX_PREVIEWS:
            break
        name, size = output["name"], int(output.get("size") or 0)
        if size > PREVIEW_BYTES or posixpath.splitext(name)[1].lower() not in _KINDS:
            continue
        try:
            data = _read(artifacts, output["uri"])
        except Exception:  # a missing blob or an unreachable store: the page shows the rest
            continue
        shown = preview_of(name, data) if data is not None else None
        if shown is not None:
            found[name] = shown
    return found
