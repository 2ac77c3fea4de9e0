"""http(s) inputs: identified by a HEAD request where the server's validators allow it (the rule is
:func:`~airflow_valohai_reuse.fingerprint.checksums.http_validator`), downloaded only when the node
runs and checked then against what was fingerprinted; downloaded and hashed where they do not."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.errors import InputError
from airflow_valohai_reuse.fingerprint.checksums import (
    http_checksum,
    http_validator,
    http_validator_of,
    stream_and_hash,
)

TIMEOUT_S = 60


def _validator(uri: str) -> dict[str, Any] | None:
    """The file's validator from a HEAD request; None where the server gives none that the rule
    accepts, or answers HEAD with an error (the file is then downloaded, which says what is wrong)."""
    request = urllib.request.Request(uri, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            if response.status != 200:
                return None
            return http_validator(response.geturl(), response.headers)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _download(input_name: str, uri: str, dst: Path) -> tuple[str, int, dict[str, Any] | None]:
    """(sha256, size, validator of the answer) of a GET of ``uri`` written to ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(uri, timeout=TIMEOUT_S) as response:
            sha256, size = stream_and_hash(response, dst)
            return sha256, size, http_validator(response.geturl(), response.headers)
    except urllib.error.HTTPError as exc:
        raise InputError(input_name, f"cannot download {uri}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(input_name, f"cannot download {uri}: {exc}") from None


def identify_http(input_name: str, uri: str, dst: Path) -> tuple[str, int | None, bool]:
    """(checksum, size, downloaded): the server's validator when it has one the rule accepts (nothing
    is downloaded), else the sha256 of the file downloaded to ``dst``."""
    validator = _validator(uri)
    if validator is not None:
        return http_checksum(validator), validator.get("size"), False
    sha256, size, _ = _download(input_name, uri, dst)
    return sha256, size, True


def fetch_http(input_name: str, uri: str, checksum: str, dst: Path) -> tuple[str, int]:
    """Download a file identified by its validator, for a node that runs: (sha256, size). The answer
    must carry the validator that was fingerprinted; otherwise the file changed since, and nothing runs."""
    expected = http_validator_of(checksum)
    sha256, size, found = _download(input_name, uri, dst)
    if expected is None:  # identified by its bytes (an input passed on by an edge)
        if sha256 != checksum:
            raise InputError(input_name, f"{uri} changed after it was fingerprinted; retry the task")
        return sha256, size
    if found != expected or (expected.get("size") is not None and size != expected["size"]):
        dst.unlink(missing_ok=True)
        raise InputError(
            input_name,
            f"{uri} changed after it was fingerprinted (the server's validators were {expected}, now "
            f"{found}, {size} bytes); nothing ran. Retry the task",
        )
    return sha256, size
