"""http(s) inputs fingerprinted by content; a step past its time limit records nothing."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from harness import copy_project, run
from sqlalchemy import create_engine, text

from airflow_valohai_reuse import build_dags

pytestmark = pytest.mark.slow

MISC = Path(__file__).resolve().parent / "pipelines" / "misc"


@pytest.fixture
def web(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _project(reuse_env, url=None):
    project = copy_project(MISC, reuse_env / "project")
    if url:
        path = project / "valohai.yaml"
        path.write_text(path.read_text().replace("http://127.0.0.1:1", url))
    return build_dags(project / "valohai.yaml")


def test_http_input_is_fingerprinted_by_content(reuse_env, docker_client, web):
    root, url = web
    (root / "data.txt").write_text("version one\n")
    dag = _project(reuse_env, url)["http-input"]
    first = run(dag, docker_client)
    assert first.state == "success", first.task_states
    staged = first.xcoms["fetch"]["inputs"]["page"][0]
    assert staged["uri"] == f"{url}/data.txt" and staged["size"] == len("version one\n")

    same = run(dag, docker_client)
    assert same.xcoms["fetch"]["reused"] is True and same.containers_started == 0

    (root / "data.txt").write_text("version two\n")
    changed = run(dag, docker_client)
    assert changed.xcoms["fetch"]["reused"] is False and changed.containers_started == 1
    copy = changed.xcoms["fetch"]["outputs"][0]["uri"].removeprefix("file://")
    assert Path(copy).read_text() == "version two\n"


def test_step_past_its_time_limit_records_nothing(reuse_env, docker_client):
    dag = _project(reuse_env)["too-slow"]
    assert dag.get_task("slow").execution_timeout.total_seconds() == 3
    result = run(dag, docker_client)
    assert result.state == "failed"
    assert result.containers_started == 1
    assert result.xcoms["slow"] is None
    engine = create_engine(f"sqlite:///{reuse_env / 'cache.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from vr_executions")).scalar() == 0
    assert not [p for p in (reuse_env / "artifacts").rglob("*") if p.is_file()]
    assert not docker_client.containers.list(all=True, filters={"label": "io.valohai-reuse.task-id=slow"})
