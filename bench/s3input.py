"""Bytes an S3 input costs to fingerprint: a 1 GB object on moto's S3 server on loopback.

The object is uploaded in one PUT with its full-object SHA-256 (``ChecksumAlgorithm="SHA256"``).
A one-node pipeline whose input defaults to that ``s3://`` URI is built with ``build_dags``, and the
node's fingerprint is computed with ``resolve.resolve``, the function the operator (and the planner)
calls: it identifies inputs through ``inputs.identify_file``, which for ``s3://`` asks
``s3.remote_checksum`` for the stored checksum and defers the download to a run. Only the image id
is given instead of asked of Docker.

The product makes its own boto3 client, so the bytes are counted from moto's request log: each
``GET`` of the object's key counts as the whole object (the log shows no Range header, so this is an
upper bound). The figure is the median over repeated fingerprints; each must carry the object's real
SHA-256, computed here while the data was made, so a zero cannot come from nothing happening. A
ranged GET made here afterwards checks that the log parser does see GETs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import MB, Options, isolated_home

SIZE = 1 << 30
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
BUCKET = "data"
KEY = "bench/input-1g.bin"
PIPELINE = f"""\
- step:
    name: consume
    image: valohai-reuse-example:busybox
    command:
      - sha256sum /valohai/inputs/raw/*
    inputs:
      - name: raw
        default: s3://{BUCKET}/{KEY}
- pipeline:
    name: s3bench
    reuse-executions: true
    nodes:
      - {{name: consume, type: execution, step: consume}}
    edges: []
"""


def _say(message: str) -> None:
    print(f"bench.s3input: {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_moto(log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        server.terminate()
        raise RuntimeError("moto_server did not start")
    return server, f"http://127.0.0.1:{port}"


def _requests(log: Path, method: str) -> int:
    """Requests of the object's key in moto's log (path-style or virtual-host-style)."""
    wanted = (f'"{method} /{BUCKET}/{KEY}', f'"{method} /{KEY}')
    # Werkzeug colours the lines of non-200 answers (a ranged GET's 206, say) with ANSI codes.
    text = _ANSI.sub("", log.read_text(errors="replace"))
    return sum(1 for line in text.splitlines() if any(w in line for w in wanted))


def _upload(client, data: Path) -> str:
    """Write SIZE random bytes to ``data``, PUT them with their SHA-256, return that SHA-256 in hex."""
    digest = hashlib.sha256()
    with open(data, "wb") as handle:
        for _ in range(SIZE // (16 * MB)):
            chunk = os.urandom(16 * MB)
            digest.update(chunk)
            handle.write(chunk)
    client.create_bucket(Bucket=BUCKET)
    with open(data, "rb") as body:
        client.put_object(
            Bucket=BUCKET,
            Key=KEY,
            Body=body,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
        )
    data.unlink()
    head = client.head_object(Bucket=BUCKET, Key=KEY, ChecksumMode="ENABLED")
    _say(f"stored: {head['ContentLength']} bytes, ChecksumSHA256 {head.get('ChecksumSHA256')}")
    return digest.hexdigest()


def _node(opts: Options):
    from airflow_valohai_reuse import build_dags

    project = opts.workdir / "project"
    project.mkdir()
    (project / "valohai.yaml").write_text(PIPELINE)
    dag = build_dags(project / "valohai.yaml")["s3bench"]
    (task,) = [t for t in dag.tasks if hasattr(t, "node")]
    return dag, task.node


def _fingerprint(dag, node) -> dict:
    """The node's fingerprint components, as the operator computes them before deciding."""
    from airflow_valohai_reuse.cache.failopen import open_cache
    from airflow_valohai_reuse.reuse.resolve import resolve
    from airflow_valohai_reuse.settings import load_settings

    settings = load_settings()
    cache = open_cache(settings.sql_alchemy_conn)
    with tempfile.TemporaryDirectory(prefix="vr-bench-inputs-") as inputs_dir:
        resolved = resolve(
            node,
            params={name: dag.params[name] for name in dag.params},
            variant={},
            upstream={},
            inputs_dir=Path(inputs_dir),
            cache=cache,
            settings=settings,
            image_id=lambda: "sha256:" + "0" * 64,
        )
    (ref,) = resolved.inputs["raw"]
    assert ref.deferred and ref.size == SIZE, ref
    return dict(resolved.fingerprint.components)


def _measure(opts: Options, client, log: Path, expected_sha256: str) -> list[int]:
    dag, node = _node(opts)
    downloaded = []
    for _ in range(opts.repeats(5, 3)):
        gets_before, heads_before = _requests(log, "GET"), _requests(log, "HEAD")
        started = time.perf_counter()
        components = _fingerprint(dag, node)
        took = time.perf_counter() - started
        time.sleep(0.2)  # let moto's log catch up
        gets = _requests(log, "GET") - gets_before
        heads = _requests(log, "HEAD") - heads_before
        identity = components["inputs"]["raw"][Path(KEY).name]
        assert identity == {"sha256": expected_sha256}, identity
        assert heads >= 1, "moto's log shows no request for the object: the count would mean nothing"
        _say(f"fingerprint in {took:.3f} s: {heads} HEAD, {gets} GET of the object; identity {identity}")
        downloaded.append(gets * SIZE)
    # The parser must see a GET when there is one.
    before = _requests(log, "GET")
    client.get_object(Bucket=BUCKET, Key=KEY, Range="bytes=0-0")["Body"].read()
    time.sleep(0.2)
    assert _requests(log, "GET") == before + 1, "moto's log parser missed a GET"
    return downloaded


def run(opts: Options) -> dict[str, int]:
    isolated_home()
    import boto3

    log = opts.workdir / "moto.log"
    server, endpoint = _start_moto(log)
    try:
        conn = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing-secret",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(conn)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing-secret",
        )
        started = time.perf_counter()
        expected = _upload(client, opts.workdir / "input-1g.bin")
        _say(f"1 GB object made and uploaded in {time.perf_counter() - started:.1f} s")
        downloaded = _measure(opts, client, log, expected)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"s3_input_fingerprint_bytes_downloaded": int(statistics.median(downloaded))}
