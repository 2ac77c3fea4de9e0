"""S3 inputs and artifacts on an S3-compatible server on loopback (moto's server mode)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from harness import copy_project, run

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.reuse.plan import MISS, plan

pytestmark = pytest.mark.slow

S3_PIPELINE = Path(__file__).resolve().parent / "pipelines" / "s3"


def _put(client, body: bytes) -> None:
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    client.put_object(
        Bucket="data", Key="raw.txt", Body=body, ChecksumAlgorithm="SHA256", ChecksumSHA256=digest
    )


def _gets(log: Path) -> int:
    """GETs of the input, whatever their status (werkzeug colours non-200 lines with ANSI codes)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text())
    return sum(1 for line in plain.splitlines() if '"GET /data/raw.txt' in line)


def test_s3_input_fingerprinted_without_download_and_outputs_stored_in_s3(reuse_env, s3, docker_client):
    client, log = s3
    _put(client, b"a\nb\nc\n")
    project = copy_project(S3_PIPELINE, reuse_env / "project")
    dag = build_dags(project / "valohai.yaml")["s3"]

    (predicted,) = plan(project / "valohai.yaml", "s3")
    assert predicted.status == MISS
    assert _gets(log) == 0  # fingerprinting read no byte of the input

    first = run(dag, docker_client)
    assert first.state == "success", first.task_states
    assert _gets(log) == 1  # the run downloads it once
    (output,) = first.xcoms["count"]["outputs"]
    assert output["uri"].startswith("s3://artifacts/store/sha256/")
    key = output["uri"].removeprefix("s3://artifacts/")
    head = client.head_object(Bucket="artifacts", Key=key, ChecksumMode="ENABLED")
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == output["checksum"]
    assert client.get_object(Bucket="artifacts", Key=key)["Body"].read().strip() == b"3"
    staged = first.xcoms["count"]["inputs"]["raw"][0]
    assert staged["checksum"] == hashlib.sha256(b"a\nb\nc\n").hexdigest()

    again = run(dag, docker_client)
    assert again.xcoms["count"]["reused"] is True and again.containers_started == 0
    assert _gets(log) == 1

    _put(client, b"a\nb\n")
    changed = run(dag, docker_client)
    assert changed.xcoms["count"]["reused"] is False
    assert "testing-secret" not in json.dumps(changed.xcoms)


def test_object_without_a_stored_sha256_is_keyed_on_its_etag(reuse_env, s3, docker_client):
    client, _log = s3
    client.put_object(Bucket="data", Key="raw.txt", Body=b"x\n")
    dag = build_dags(copy_project(S3_PIPELINE, reuse_env / "project") / "valohai.yaml")["s3"]
    first = run(dag, docker_client)
    assert first.state == "success", first.task_states
    assert first.xcoms["count"]["inputs"]["raw"][0]["checksum"].startswith("etag:")
    client.put_object(Bucket="data", Key="raw.txt", Body=b"y\n")
    assert run(dag, docker_client).xcoms["count"]["reused"] is False


def test_artifact_changed_in_the_store_is_not_reused_and_is_healed(reuse_env, s3, docker_client):
    client, _log = s3
    _put(client, b"a\nb\nc\n")
    dag = build_dags(copy_project(S3_PIPELINE, reuse_env / "project") / "valohai.yaml")["s3"]
    first = run(dag, docker_client)
    (output,) = first.xcoms["count"]["outputs"]
    key = output["uri"].removeprefix("s3://artifacts/")
    forged = b"9\n"  # same size, other bytes, with a checksum of its own
    digest = base64.b64encode(hashlib.sha256(forged).digest()).decode()
    client.put_object(
        Bucket="artifacts", Key=key, Body=forged, ChecksumAlgorithm="SHA256", ChecksumSHA256=digest
    )
    second = run(dag, docker_client)
    assert second.xcoms["count"]["reused"] is False and second.containers_started == 1
    assert client.get_object(Bucket="artifacts", Key=key)["Body"].read() == b"3\n"
    third = run(dag, docker_client)
    assert third.xcoms["count"]["reused_from"] == second.xcoms["count"]["execution_id"]


def _stored(store, tmp_path, word: str, count: int) -> list[tuple[str, int, str]]:
    """(URI, size, sha256) of ``count`` small files put in ``store``."""
    checks = []
    for i in range(count):
        body = f"{word} {i}\n".encode()
        path = tmp_path / f"{word}{i}"
        path.write_bytes(body)
        digest = hashlib.sha256(body).hexdigest()
        checks.append((store.put(path, digest, len(body)), len(body), digest))
    return checks


def test_a_hit_verifies_its_outputs_at_once_and_finds_each_missing_one(reuse_env, s3, tmp_path):
    from airflow_valohai_reuse.stores.base import verify_all
    from airflow_valohai_reuse.stores.registry import open_store

    client, _ = s3
    store = open_store("s3://artifacts/store")
    checks = _stored(store, tmp_path, "output", 6)
    assert verify_all(store, checks) == [True] * 6
    client.delete_object(Bucket="artifacts", Key=checks[2][0].removeprefix("s3://artifacts/"))
    wrong_size = (checks[4][0], checks[4][1] + 1, checks[4][2])
    found = verify_all(store, [*checks[:4], wrong_size, checks[5]])
    assert found == [True, True, False, True, False, True]


def test_many_outputs_are_verified_by_listing_their_key_prefixes(reuse_env, s3, tmp_path, monkeypatch):
    """A hit with many outputs lists the store's key prefixes instead of one HEAD per output; each
    missing or resized blob is still found, and a listing cut short is finished by HEAD requests."""
    from airflow_valohai_reuse.stores import s3 as s3_store
    from airflow_valohai_reuse.stores.registry import open_store

    client, log = s3
    store = open_store("s3://artifacts/store")
    checks = _stored(store, tmp_path, "many", 120)
    client.delete_object(Bucket="artifacts", Key=checks[7][0].removeprefix("s3://artifacts/"))
    checks[9] = (checks[9][0], checks[9][1] + 1, checks[9][2])
    expected = [i not in (7, 9) for i in range(120)]
    before = log.read_text().count("HEAD /artifacts/")
    assert store.exists_all(checks) == expected
    heads = log.read_text().count("HEAD /artifacts/") - before
    assert heads == 2  # the two blobs no listing found, asked again one by one
    monkeypatch.setattr(s3_store, "LIST_PAGES", 1)  # listings cut short: HEAD requests find the rest
    assert store.exists_all(checks) == expected
