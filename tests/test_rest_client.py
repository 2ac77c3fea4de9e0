"""The whole flow through the official REST client (apache-airflow-client) against a real API server
with a token: trigger, wait, trigger again and see every node reused, read extra links and rendered
fields, reuse nodes from an earlier run, and have malformed conf refused with HTTP 400 and a bad pin
fail in one log line. The Airflow is the one ``scripts/airflow-local.sh`` starts (every component,
LocalExecutor), on a free port with its own home."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from local_airflow import LocalAirflow

pytestmark = pytest.mark.slow

client = pytest.importorskip("airflow_client.client")

DAG = "nightly-training"
NODES = ("preprocess", "train", "evaluate")


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, docker_client):
    running = LocalAirflow(tmp_path_factory.mktemp("airflow-local"))
    try:
        yield running.ready()
    finally:
        running.stop()


@pytest.fixture(scope="module")
def api(airflow):
    """An ApiClient holding the token the auth manager's /auth/token gave the harness."""
    return client.ApiClient(client.Configuration(host=airflow.url, access_token=airflow.token))


def _trigger(api, conf: dict) -> str:
    body = client.TriggerDAGRunPostBody(logical_date=None, conf=conf)
    return client.DagRunApi(api).trigger_dag_run(DAG, body).dag_run_id


def _wait(airflow, api, run_id: str) -> str:
    """The run's final state, read through the client."""
    runs = client.DagRunApi(api)
    return airflow.finished(DAG, run_id, state=lambda: str(runs.get_dag_run(DAG, run_id).state.value))


def _published(api, run_id: str) -> dict[str, dict]:
    xcoms = client.XComApi(api)
    found = {}
    for node in NODES:
        entry = xcoms.get_xcom_entry(DAG, node, run_id, "valohai_execution", deserialize=True)
        found[node] = getattr(entry, "actual_instance", entry).value
    return found


def _log(api, run_id: str, task_id: str) -> list[dict]:
    found = client.TaskInstanceApi(api).get_log(DAG, run_id, task_id, 1, full_content=True)
    content = getattr(found.content, "actual_instance", found.content)
    return [item.to_dict() if hasattr(item, "to_dict") else {"event": str(item)} for item in content]


def _plugin(api, path: str) -> dict:
    """A GET of the plugin's JSON API through the client's own HTTP layer and token."""
    url = f"{api.configuration.host}/valohai-reuse{path}"
    answer = api.call_api(
        "GET", url, header_params={"Authorization": f"Bearer {api.configuration.access_token}"}
    )
    answer.read()
    return json.loads(answer.data)


def _value(xcom) -> dict:
    return xcom if isinstance(xcom, dict) else json.loads(xcom)


def _refused(api, conf: dict) -> str:
    with pytest.raises(client.ApiException) as refused:
        _trigger(api, conf)
    assert refused.value.status == 400, refused.value
    return str(refused.value.body)


def test_the_whole_flow_through_the_rest_client(airflow, api):
    first = _trigger(api, {})
    assert _wait(airflow, api, first) == "success"
    ran = {node: _value(x) for node, x in _published(api, first).items()}
    assert {x["kind"] for x in ran.values()} == {"ran"}

    second = _trigger(api, {})
    assert _wait(airflow, api, second) == "success"
    again = {node: _value(x) for node, x in _published(api, second).items()}
    assert {node: x["kind"] for node, x in again.items()} == dict.fromkeys(NODES, "reused")
    assert {node: x["execution_id"] for node, x in again.items()} == {
        node: x["execution_id"] for node, x in ran.items()
    }

    instances = client.TaskInstanceApi(api)
    # the rendered command is the one that ran (and, for a reused node, the one its execution ran)
    for run_id in (first, second):
        (command,) = instances.get_task_instance(DAG, run_id, "train").rendered_fields["command"]
        assert "sh train.sh --epochs=3 --learning_rate=0.01" in command, command

    # the plugin's links of a reused node: the task instance that ran its execution, and its outputs
    links = client.ExtraLinksApi(api).get_extra_links(DAG, second, "train")
    assert links.total_entries == len(links.extra_links)
    source = f"dags/{DAG}/runs/{quote(first, safe='')}/tasks/train"
    assert links.extra_links["Source execution"].endswith(source), links.extra_links
    outputs = f"/executions/{ran['train']['execution_id']}#outputs"
    assert links.extra_links["Outputs"].endswith(outputs), links.extra_links
    # a node that ran has no source: the server answers null, which the client's model (string values)
    # refuses, so that answer is read raw
    raw = client.ExtraLinksApi(api).get_extra_links_without_preload_content(DAG, first, "train")
    assert json.loads(raw.read())["extra_links"]["Source execution"] is None
    plugins = client.PluginApi(api).get_plugins().plugins
    assert "valohai_reuse" in [plugin.name for plugin in plugins]

    # the plugin's JSON API, with the same token: the second run's nodes, and the figures
    run_view = _plugin(api, f"/api/runs/{DAG}/{quote(second, safe='')}")
    assert {n["task_id"]: (n["kind"], n["execution_id"]) for n in run_view["nodes"]} == {
        node: ("reused", ran[node]["execution_id"]) for node in NODES
    }
    assert {n["task_id"]: n["source"]["run_id"] for n in run_view["nodes"]} == dict.fromkeys(NODES, first)
    assert run_view["saved_seconds"] > 0
    stats = _plugin(api, "/api/stats?days=7")
    (pipeline,) = [p for p in stats["pipelines"] if p["pipeline"] == DAG]
    assert (pipeline["executions_run"], pipeline["executions_reused"]) == (3, 3)
    host = api.configuration.host
    anonymous = client.ApiClient(client.Configuration(host=host)).call_api(
        "GET", f"{host}/valohai-reuse/api/stats"
    )
    anonymous.read()
    assert anonymous.status == 401  # no token: refused, as every page of the plugin

    doc = client.DAGApi(api).get_dag_details(DAG).doc_md
    assert "```yaml" in doc and "name: nightly-training" in doc and "### Edges" in doc


def test_reuse_from_run_and_refusals_through_the_rest_client(airflow, api):
    first = _trigger(api, {})
    assert _wait(airflow, api, first) == "success"
    source = _value(_published(api, first)["preprocess"])["execution_id"]

    conf = {
        "reuse_executions": False,
        "reuse_from_run": {"run_id": first, "nodes": ["preprocess"]},
    }
    third = _trigger(api, conf)
    assert _wait(airflow, api, third) == "success"
    published = {node: _value(x) for node, x in _published(api, third).items()}
    assert published["preprocess"]["kind"] == "pinned"
    assert published["preprocess"]["execution_id"] == source
    assert published["train"]["kind"] == published["evaluate"]["kind"] == "ran"

    assert "did you mean 'reuse_executions'" in _refused(api, {**conf, "reuse_execution": True})  # a typo
    assert "reuse_executions" in _refused(api, {"reuse_executions": "maybe"})
    assert "reuse_nodes" in _refused(api, {"reuse_nodes": {"nope": "x"}})
    assert "reuse_from_run" in _refused(api, {"reuse_from_run": {"run_id": first, "nodes": ["nope"]}})

    bad = _trigger(api, {"reuse_nodes": {"preprocess": "no-such-execution"}})
    assert _wait(airflow, api, bad) == "failed"
    log = _log(api, bad, "preprocess")
    line = "reuse_nodes: node 'preprocess': no successful execution with id 'no-such-execution'"
    events = [entry.get("event") for entry in log]
    # the task's log: this one line, then Airflow's own "Task exited", and no traceback
    assert events[events.index(line) + 1] == "Task exited", events
    assert not any("error_detail" in entry or "Traceback" in str(entry) for entry in log), log
    instances = client.TaskInstanceApi(api).get_task_instances(DAG, bad).task_instances
    states = {ti.task_id: str(ti.state.value) for ti in instances}
    assert states == {"preprocess": "failed", "train": "upstream_failed", "evaluate": "upstream_failed"}
