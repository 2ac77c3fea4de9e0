"""The artifact store of a URI, chosen by its scheme: ``file://`` and ``s3://``."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from airflow_valohai_reuse.contracts import ArtifactStore
from airflow_valohai_reuse.errors import StoreError
from airflow_valohai_reuse.fingerprint.checksums import StatCache
from airflow_valohai_reuse.stores.local import LocalStore
from airflow_valohai_reuse.stores.s3 import S3Store


def _local(uri: str, conn_id: str, digests: StatCache | None) -> ArtifactStore:
    return LocalStore.from_uri(uri, digests)


def _s3(uri: str, conn_id: str, digests: StatCache | None) -> ArtifactStore:
    return S3Store(uri, conn_id)


#: scheme → the store of a URI of it (the URI, the AWS connection id, a stat cache of blob digests)
SCHEMES: dict[str, Callable[[str, str, StatCache | None], ArtifactStore]] = {"file": _local, "s3": _s3}


def open_store(uri: str, conn_id: str = "aws_default", digests: StatCache | None = None) -> ArtifactStore:
    """The store for a URI such as ``file:///var/artifacts`` or ``s3://bucket/prefix``.

    ``digests``: a stat cache that spares a local store re-reading unchanged blobs to verify them.
    """
    scheme = urlparse(uri).scheme
    if scheme not in SCHEMES:
        choices = " or ".join(f"{s}://" for s in SCHEMES)
        raise StoreError(f"artifact_store {uri!r}: scheme {scheme!r} is not supported (use {choices})")
    return SCHEMES[scheme](uri, conn_id, digests)
