"""http(s) inputs identified by their server's validators (a HEAD request) where the rule allows it, and
downloaded only by a node that runs; downloaded and hashed where it does not (a weak ETag, no
validators, a file changed within the last minute). A real HTTP server on loopback counts the
requests: a fully reused run makes no GET."""

from __future__ import annotations

import collections
import email.utils
import hashlib
import http.server
import os
import threading
import time
from pathlib import Path

import pytest

from airflow_valohai_reuse.errors import InputError
from airflow_valohai_reuse.fingerprint.checksums import NoStatCache, http_validator
from airflow_valohai_reuse.runtime.inputs import FileRef, identify_file
from airflow_valohai_reuse.runtime.staging import fetch_deferred

HOUR_AGO = time.time() - 3600


class _Handler(http.server.BaseHTTPRequestHandler):
    """Files of ``root`` with validators by the first folder of the path: ``etag/`` a strong ETag and
    Last-Modified, ``weak/`` a weak ETag, ``modified/`` Last-Modified only, ``none/`` neither."""

    root: Path
    seen: collections.Counter

    def _answer(self, body: bool) -> None:
        self.seen[(self.command, self.path)] += 1
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        mode = self.path.strip("/").split("/")[0]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        if mode in ("etag", "weak", "modified"):
            self.send_header("Last-Modified", email.utils.formatdate(path.stat().st_mtime, usegmt=True))
        if mode in ("etag", "weak"):
            tag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
            self.send_header("ETag", tag if mode == "etag" else f"W/{tag}")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path):
    """(folder served, base URL, request counter by (method, path))."""
    root = tmp_path / "site"
    root.mkdir()
    seen: collections.Counter = collections.Counter()
    handler = type("Handler", (_Handler,), {"root": root, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _put(root: Path, name: str, text: str, mtime: float = HOUR_AGO) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def _identify(url: str, folder: Path) -> FileRef:
    return identify_file("data", FileRef("data.txt", url), folder, NoStatCache())


def test_a_strong_etag_or_a_settled_last_modified_identifies_without_downloading(site, tmp_path):
    root, base, seen = site
    for mode in ("etag", "modified", "weak", "none"):
        _put(root, f"{mode}/data.txt", "version one\n")
    strong = _identify(f"{base}/etag/data.txt", tmp_path / "a")
    dated = _identify(f"{base}/modified/data.txt", tmp_path / "b")
    for ref, mode in ((strong, "etag"), (dated, "modified")):
        assert ref.deferred and not ref.placed and ref.size == len("version one\n")
        assert seen[("HEAD", f"/{mode}/data.txt")] == 1 and seen[("GET", f"/{mode}/data.txt")] == 0
    assert strong.identity["http"]["etag"].startswith('"') and strong.identity["http"]["url"].endswith(
        "/etag/data.txt"
    )
    assert set(dated.identity["http"]) == {"url", "last_modified", "size"}
    assert not (tmp_path / "a").exists()
    # a weak ETag or no validator at all: the bytes are the identity
    for mode in ("weak", "none"):
        ref = _identify(f"{base}/{mode}/data.txt", tmp_path / mode)
        assert ref.placed and not ref.deferred
        assert ref.identity == {"sha256": hashlib.sha256(b"version one\n").hexdigest()}
        assert seen[("GET", f"/{mode}/data.txt")] == 1
        assert (tmp_path / mode / "data.txt").read_text() == "version one\n"


def test_a_file_changed_within_the_last_minute_is_downloaded_whatever_its_validators(site, tmp_path):
    root, base, seen = site
    _put(root, "etag/fresh.txt", "just written\n", mtime=time.time())
    ref = identify_file("data", FileRef("fresh.txt", f"{base}/etag/fresh.txt"), tmp_path, NoStatCache())
    assert ref.placed and "sha256" in ref.identity and seen[("GET", "/etag/fresh.txt")] == 1


def test_the_rule_on_headers():
    now = time.time()
    date = email.utils.formatdate(now, usegmt=True)
    old = email.utils.formatdate(now - 120, usegmt=True)
    recent = email.utils.formatdate(now - 5, usegmt=True)
    url = "https://example.org/x"
    assert http_validator(url, {"ETag": '"a"', "Content-Length": "3"}) == {
        "url": url,
        "etag": '"a"',
        "size": 3,
    }
    assert http_validator(url, {"ETag": 'W/"a"', "Content-Length": "3"}) is None
    assert (
        http_validator(url, {"ETag": 'W/"a"', "Last-Modified": old, "Date": date, "Content-Length": "3"})
        is None
    )
    assert http_validator(url, {"ETag": '"a"', "Last-Modified": recent, "Date": date}) is None
    assert http_validator(url, {"ETag": '"a"', "Last-Modified": old}) is None  # no Date: cannot tell
    assert http_validator(url, {"ETag": '"a"', "Content-Encoding": "gzip"}) is None
    assert http_validator(url, {"Last-Modified": old, "Date": date}) is None  # no size
    found = http_validator(url, {"Last-Modified": old, "Date": date, "Content-Length": "7"})
    assert found is not None and found["size"] == 7 and "etag" not in found
    assert http_validator(url, {"Content-Length": "7"}) is None
    # a token in the URL is kept only as a digest; a signed URL (new with each signing) goes by its bytes
    tokened = http_validator("https://u:pw@example.org/x?token=s3cr3t", {"ETag": '"a"'})
    assert tokened is not None and tokened["url"] == url and "s3cr3t" not in str(tokened)
    other = http_validator("https://u:pw@example.org/x?token=other", {"ETag": '"a"'})
    assert other is not None and other["private_sha256"] != tokened["private_sha256"]
    signed = f"{url}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc"
    assert http_validator(signed, {"ETag": '"a"', "Content-Length": "3"}) is None


def test_a_deferred_file_is_downloaded_when_the_node_runs_and_checked(site, tmp_path):
    root, base, seen = site
    _put(root, "etag/data.txt", "version one\n")
    ref = _identify(f"{base}/etag/data.txt", tmp_path / "identify")
    inputs = {"data": [ref]}
    fetch_deferred(inputs, tmp_path / "inputs", "aws_default")
    assert (tmp_path / "inputs" / "data" / "data.txt").read_text() == "version one\n"
    assert inputs["data"][0].checksum == hashlib.sha256(b"version one\n").hexdigest()  # for inputs.json
    assert seen[("GET", "/etag/data.txt")] == 1
    # changed between the decision and the run: nothing runs on other bytes than were fingerprinted
    _put(root, "etag/data.txt", "version two\n")
    with pytest.raises(InputError, match="changed after it was fingerprinted"):
        fetch_deferred({"data": [ref]}, tmp_path / "again", "aws_default")
    assert not (tmp_path / "again" / "data" / "data.txt").exists()


def test_an_unreachable_file_names_the_input_and_the_url(site, tmp_path):
    _, base, _ = site
    with pytest.raises(InputError, match=r"input 'data': cannot download .*/etag/gone.txt: HTTP 404"):
        _identify(f"{base}/etag/gone.txt", tmp_path)


@pytest.mark.slow
def test_a_reused_node_s_http_input_is_never_downloaded(site, reuse_env, docker_client):
    from harness import copy_project, run

    from airflow_valohai_reuse import build_dags

    root, base, seen = site
    _put(root, "etag/data.txt", "version one\n")
    project = copy_project(Path(__file__).resolve().parent / "pipelines" / "misc", reuse_env / "project")
    path = project / "valohai.yaml"
    path.write_text(path.read_text().replace("http://127.0.0.1:1", f"{base}/etag"))
    dag = build_dags(path)["http-input"]

    first = run(dag, docker_client)
    assert first.state == "success", first.task_states
    assert first.containers_started == 1 and seen[("GET", "/etag/data.txt")] == 1  # fetched to run
    staged = first.xcoms["fetch"]["inputs"]["page"][0]
    assert staged["checksum"].startswith("http:") and staged["size"] == len("version one\n")

    second = run(dag, docker_client)
    assert second.xcoms["fetch"]["reused"] is True and second.containers_started == 0
    assert seen[("GET", "/etag/data.txt")] == 1 and seen[("HEAD", "/etag/data.txt")] == 2

    _put(root, "etag/data.txt", "version two\n")  # same size, same old date: only the ETag tells
    changed = run(dag, docker_client)
    assert changed.xcoms["fetch"]["reused"] is False and changed.containers_started == 1
    assert seen[("GET", "/etag/data.txt")] == 2
    copy = changed.xcoms["fetch"]["outputs"][0]["uri"].removeprefix("file://")
    assert Path(copy).read_text() == "version two\n"
