"""S3 (and any S3-compatible store) through the Amazon provider's S3Hook: artifacts and inputs.

Inputs are fingerprinted from the store's own checksum, never by downloading them; a file is
downloaded only when a node actually runs.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from airflow_valohai_reuse.errors import InputError, StoreError
from airflow_valohai_reuse.internals import botocore_session, s3_hook_class


@functools.cache
def _loader() -> Any:
    """One botocore data loader for every S3 client of the process.

    Each boto3 session otherwise reads and parses botocore's JSON (S3's service model, the endpoints)
    again: about 100 ms of CPU per client on a small machine, more than the rest of a reused node's
    work. Shared, it is parsed once per process; a Celery worker that imports
    :mod:`airflow_valohai_reuse.celery_preload` parses it before forking, so no task process does.
    """
    import botocore.loaders

    return botocore.loaders.Loader()


@functools.cache
def _hook_class() -> type:
    """The provider's S3Hook, its sessions given the shared loader, and its user agent's caller named
    rather than searched for (all else is the hook's own; internals.py says why and what it touches)."""
    return s3_hook_class(_loader())


#: clients made before a worker forked, by the identity of the connection they were made from
_made_before_fork: dict[str, Any] = {}


def _identity(hook: Any) -> str | None:
    """A digest of everything a client made from the hook's connection depends on, where that is all in
    the connection (its own access keys, no role to assume, no profile); None otherwise."""
    config = hook.conn_config
    own_keys = config.aws_access_key_id and config.aws_secret_access_key
    if not own_keys or config.role_arn or config.profile_name:
        return None
    fields = [
        config.conn_id,
        config.conn_type,
        config.aws_access_key_id,
        config.aws_secret_access_key,
        config.aws_session_token,
        config.region_name,
        config.endpoint_url,
        config.verify,
        config.extra_config,
    ]
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _client(conn_id: str) -> Any:
    """An S3 client from the connection as it is now: the one made before the fork where the connection
    still has the identity it had then, else a new one."""
    hook = _hook_class()(aws_conn_id=conn_id)
    if _made_before_fork:
        made = _made_before_fork.get(_identity(hook) or "")
        if made is not None:
            return made
    return hook.get_conn()


def warm() -> None:
    """Parse botocore's data into the shared loader once, before a worker forks (a client made with no
    credentials and dropped; no request is made)."""
    import boto3

    session = boto3.session.Session(aws_access_key_id="-", aws_secret_access_key="-", region_name="us-east-1")
    botocore_session(session).register_component("data_loader", _loader())
    session.client("s3")


def make_before_fork(conn_id: str) -> bool:
    """Make the client of ``conn_id`` once, before a worker forks, when the connection is defined in the
    environment (``AIRFLOW_CONN_…``) with its own access keys: each task process then takes it instead
    of making its own (about 30 ms of CPU each), for as long as the connection it reads is the same.
    No request is made. Returns whether a client was made."""
    if f"AIRFLOW_CONN_{conn_id.upper()}" not in os.environ:
        return False  # read elsewhere, the connection needs a task's context
    hook = _hook_class()(aws_conn_id=conn_id)
    key = _identity(hook)
    if key is None:
        return False  # credentials from a role, a profile or the environment: each task resolves them
    _made_before_fork[key] = hook.get_conn()
    return True


def split(uri: str) -> tuple[str, str]:
    """(bucket, key) of an ``s3://`` URI, parsed as the Amazon provider parses it."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    if urlparse(uri).scheme != "s3":
        raise StoreError(f"not an s3:// URI: {uri!r}")
    try:
        return S3Hook.parse_s3_url(uri)
    except Exception as exc:  # the provider raises its own error class for a URI without a bucket
        raise StoreError(f"not an s3:// URI: {uri!r} ({exc})") from None


def remote_checksum(conn_id: str, uri: str, input_name: str) -> tuple[str, int, str]:
    """(checksum, size, strength) of an object from a HEAD request; no byte of it is read.

    ``sha256`` when the store keeps a full-object SHA-256; otherwise the ETag with the version,
    recorded as ``etag`` (a weaker identity: an MD5, or a hash of part hashes for multipart).
    """
    bucket, key = split(uri)
    try:
        head = _client(conn_id).head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception as exc:  # botocore's ClientError and connection errors alike
        raise InputError(input_name, f"cannot read {uri}: {exc}") from None
    size = int(head["ContentLength"])
    sha = head.get("ChecksumSHA256")
    if sha and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
        return base64.b64decode(sha).hex(), size, "sha256"
    etag = head["ETag"].strip('"')
    return f"etag:{etag}:{head.get('VersionId') or ''}", size, "etag"


def download(conn_id: str, uri: str, dst: Path) -> None:
    bucket, key = split(uri)
    _client(conn_id).download_file(bucket, key, str(dst))


#: pages of one key prefix a hit's verification lists before asking for the rest one by one
LIST_PAGES = 8


class S3Store:
    """Artifacts under ``s3://bucket/prefix/sha256/<ab>/<sha256>``, uploaded with their SHA-256."""

    scheme = "s3"
    #: HEAD requests a hit's verification makes at once (boto3 clients are thread-safe)
    concurrent_checks = 16

    def __init__(self, uri: str, conn_id: str) -> None:
        self.bucket, prefix = split(uri.rstrip("/") + "/")
        self.prefix = prefix.rstrip("/")
        self.conn_id = conn_id

    @functools.cached_property
    def client(self) -> Any:
        """One S3 client for the store's life (a task), from the connection as it is then."""
        return _client(self.conn_id)

    def _key(self, sha256: str) -> str:
        return "/".join(p for p in (self.prefix, "sha256", sha256[:2], sha256) if p)

    def put(self, local_path: Path, sha256: str, size: int) -> str:
        key = self._key(sha256)
        uri = f"s3://{self.bucket}/{key}"
        client = self.client
        if not self.exists(uri, size, sha256):
            try:
                client.upload_file(
                    str(local_path),
                    self.bucket,
                    key,
                    ExtraArgs={
                        "ChecksumAlgorithm": "SHA256",
                        "ChecksumSHA256": base64.b64encode(bytes.fromhex(sha256)).decode(),
                    },
                )
            except Exception as exc:
                raise StoreError(f"cannot upload {local_path.name} to {uri}: {exc}") from exc
        local_path.unlink()
        return uri

    def owns(self, uri: str) -> bool:
        root = "/".join(p for p in (self.prefix, "sha256") if p)
        return uri.startswith(f"s3://{self.bucket}/{root}/")

    def exists(self, uri: str, size: int, sha256: str | None = None) -> bool:
        bucket, key = split(uri)
        try:
            head = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except Exception:
            return False
        stored = head.get("ChecksumSHA256")
        if sha256 and stored and base64.b64decode(stored).hex() != sha256:
            return False
        return int(head["ContentLength"]) == size

    def exists_all(self, checks: Sequence[tuple[str, int, str | None]]) -> list[bool]:
        """:meth:`exists` of each (URI, size, sha256). A few are HEAD requests at once; many are
        listed (ListObjectsV2, 1,000 keys a page) per key prefix ``sha256/<ab>/`` they fall in, from
        the first wanted key to the last: a key is its content's SHA-256, which S3 checked on upload,
        so a listed key of the right size is that content. What :data:`LIST_PAGES` pages of a prefix
        do not reach (a very large store), and URIs not named that way, are HEAD requests."""
        if len(checks) <= 2 * self.concurrent_checks:
            return self._head_all(checks)
        wanted: dict[str, list[str]] = {}
        for uri, _size, sha256 in checks:
            if self._named(uri, sha256):
                key = split(uri)[1]
                wanted.setdefault(key.rsplit("/", 1)[0] + "/", []).append(key)
        listed: dict[str, int] = {}
        for prefix, keys in sorted(wanted.items()):
            listed |= self._listing(prefix, sorted(keys))
        found = [listed.get(split(uri)[1]) == size for uri, size, _sha256 in checks]
        rest = [i for i, (uri, _size, _sha256) in enumerate(checks) if not found[i]]
        for i, there in zip(rest, self._head_all([checks[i] for i in rest]), strict=True):
            found[i] = there  # not listed: a HEAD says (a missing blob costs one request)
        return found

    def _named(self, uri: str, sha256: str | None) -> bool:
        return bool(sha256) and uri == f"s3://{self.bucket}/{self._key(sha256 or '')}"

    def _listing(self, prefix: str, keys: list[str]) -> dict[str, int]:
        """Key → size of the keys under ``prefix`` from ``keys[0]`` to ``keys[-1]``, at most
        :data:`LIST_PAGES` pages of them; a listing that fails lists nothing."""
        sizes: dict[str, int] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, StartAfter=keys[0][:-1]
        )
        try:
            for number, page in enumerate(pages, 1):
                for item in page.get("Contents", []):
                    sizes[item["Key"]] = int(item["Size"])
                if number >= LIST_PAGES or (page.get("Contents") and page["Contents"][-1]["Key"] >= keys[-1]):
                    break
        except Exception:  # the HEAD requests that follow say what is there
            return sizes
        return sizes

    def _head_all(self, checks: Sequence[tuple[str, int, str | None]]) -> list[bool]:
        if len(checks) <= 1:
            return [self.exists(*check) for check in checks]
        width = min(self.concurrent_checks, len(checks))
        with ThreadPoolExecutor(width, thread_name_prefix="valohai-reuse-verify") as pool:
            return list(pool.map(lambda check: self.exists(*check), checks))

    def get(self, uri: str, dst: Path) -> None:
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".download-")
        os.close(fd)
        download(self.conn_id, uri, Path(tmp))
        os.replace(tmp, dst)

    def blobs(self, older_than_s: float) -> Iterator[tuple[str, int]]:
        limit = datetime.now(UTC) - timedelta(seconds=older_than_s)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix="/".join(p for p in (self.prefix, "sha256") if p) + "/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                if item["LastModified"] < limit:
                    yield f"s3://{self.bucket}/{item['Key']}", int(item["Size"])

    def delete(self, uri: str) -> None:
        bucket, key = split(uri)
        self.client.delete_object(Bucket=bucket, Key=key)

    def flush(self) -> None:
        """S3 keeps every checksum itself; nothing to write."""
