"""A trigger cannot ask for what its run would ignore or its nodes would refuse: the API server's
middleware (plugins/confcheck.py) answers HTTP 400 with one line. Unit tests of the check itself
(pipeline/options.py), then one real Airflow (scripts/airflow-local.sh) reached through the official
REST client, which also shows that a pipeline with secrets leaks none of them through the REST API or
the plugin's pages, and that the execution page takes a short id."""

from __future__ import annotations

import json
import shutil
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.pipeline.options import did_you_mean, refusal

ROOT = Path(__file__).resolve().parent.parent
BASIC = Path(__file__).resolve().parent / "pipelines" / "basic" / "valohai.yaml"
PATTERNS = ("*SECRET*", "*PASSWORD*", "*TOKEN*")
SECRETS = ("env-s3cr3t-value", "param-s3cr3t-value", "pipeline-s3cr3t-value")

PIPELINE = """\
- step:
    name: fetch
    image: valohai-reuse-example:busybox
    command:
      - echo "token=$MY_API_TOKEN"
      - echo "args {parameters}"
      - echo done > /valohai/outputs/out.txt
    parameters:
      - name: db_password
        type: string
        default: param-s3cr3t-value
      - name: rows
        type: integer
        default: 3
        min: 1
        max: 5
    environment-variables:
      - name: MY_API_TOKEN
        default: env-s3cr3t-value
- pipeline:
    name: secrets
    parameters:
      - name: rows
        target: fetch.parameter.rows
        default: 3
      - name: api_password
        target: fetch.parameter.db_password
        default: pipeline-s3cr3t-value
    nodes:
      - name: fetch
        type: execution
        step: fetch
    edges: []
"""


def _schemas(path: Path, dag_id: str) -> dict:
    """The Params' schemas as the API server holds them (the serialized DAG)."""
    from airflow.serialization.serialized_objects import DagSerialization

    params = DagSerialization.from_dict(DagSerialization.to_dict(build_dags(path)[dag_id])).params
    return {name: params.get_param(name).schema for name in params}


def test_did_you_mean_names_the_nearest_known_key_or_nothing():
    known = ["reuse_executions", "reuse_nodes", "reuse_from_run", "epochs"]
    assert did_you_mean("reuse_execution", known) == " (did you mean 'reuse_executions'?)"
    assert did_you_mean("reuse_node", known) == " (did you mean 'reuse_nodes'?)"
    assert did_you_mean("Epochs", known) == " (did you mean 'epochs'?)"
    assert did_you_mean("learning_rate", known) == ""


@pytest.mark.parametrize(
    ("conf", "refused"),
    [
        ({}, None),
        ({"epochs": 4, "reuse_executions": None, "reuse_nodes": {}, "reuse_from_run": None}, None),
        ({"epochs": None}, None),
        (
            {"reuse_execution": False},
            "conf key 'reuse_execution' is neither a run option nor a pipeline parameter (did you mean "
            "'reuse_executions'?); the keys are: epochs, reuse_executions, reuse_from_run, reuse_nodes",
        ),
        (
            {"epochs": 3.0},
            "Invalid input for param epochs: 3.0 is not an integer (parameter 'epochs' of node 'fit' "
            "refuses it)",
        ),
        ({"epochs": "three"}, "Invalid input for param epochs: 'three' is not of type 'integer', 'null'"),
        ({"reuse_nodes": {"nope": "x"}}, "Invalid input for param reuse_nodes: 'nope' is not one of"),
    ],
)
def test_refusal_is_one_line_naming_the_key_and_why(conf, refused):
    found = refusal(conf, _schemas(BASIC, "basic"), PATTERNS)
    if refused is None:
        assert found is None
    else:
        assert found is not None and found.startswith(refused) and "\n" not in found


SECRET_CHOICE = """\
- step:
    name: login
    image: valohai-reuse-example:busybox
    command: echo {parameters}
    parameters:
      - name: db_password
        type: string
        choices: [a-s3cr3t, b-s3cr3t]
        default: a-s3cr3t
- pipeline:
    name: login
    parameters:
      - name: db_password
        target: login.parameter.db_password
    nodes:
      - name: login
        type: execution
        step: login
    edges: []
"""


def test_a_value_outside_the_nodes_declaration_is_refused_and_a_secret_is_not_quoted(tmp_path):
    (tmp_path / "valohai.yaml").write_text(PIPELINE)
    schemas = _schemas(tmp_path / "valohai.yaml", "secrets")
    assert refusal({"rows": 9}, schemas, PATTERNS) == (
        "Invalid input for param rows: 9 is greater than the maximum allowed (5) (parameter 'rows' of node "
        "'fetch' refuses it)"
    )
    assert refusal({"rows": 4}, schemas, PATTERNS) is None
    (tmp_path / "valohai.yaml").write_text(SECRET_CHOICE)
    schemas = _schemas(tmp_path / "valohai.yaml", "login")
    refused = refusal({"db_password": "hunter2"}, schemas, PATTERNS)
    assert refused is not None and refused.startswith("Invalid input for param db_password: ")
    assert "hunter2" not in refused and "s3cr3t" not in refused
    assert refusal({"db_password": "b-s3cr3t"}, schemas, PATTERNS) is None


# One real Airflow for the rest: each start costs about 30 s.


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, docker_client):
    from local_airflow import LocalAirflow

    home = tmp_path_factory.mktemp("conf-refused")
    shutil.copytree(ROOT / "examples" / "nightly", home / "pipelines" / "nightly")
    (home / "pipelines" / "secrets").mkdir()
    (home / "pipelines" / "secrets" / "valohai.yaml").write_text(PIPELINE)
    running = LocalAirflow(home, {"AIRFLOW_LOCAL_PIPELINES": str(home / "pipelines")})
    try:
        yield running.ready()
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client():
    return pytest.importorskip("airflow_client.client")


@pytest.fixture(scope="module")
def api(airflow, client):
    return client.ApiClient(client.Configuration(host=airflow.url, access_token=airflow.token))


def _trigger(client, api, dag_id: str, conf: dict) -> str:
    body = client.TriggerDAGRunPostBody(logical_date=None, conf=conf)
    return client.DagRunApi(api).trigger_dag_run(dag_id, body).dag_run_id


def _refused(client, api, dag_id: str, conf: dict) -> str:
    with pytest.raises(client.ApiException) as refused:
        _trigger(client, api, dag_id, conf)
    assert refused.value.status == 400, refused.value
    return json.loads(refused.value.body)["detail"]


def _backfill(client, api, dag_id: str, conf: dict, dry_run: bool) -> tuple[int, str]:
    """``POST /api/v2/backfills`` (or its dry run) with ``dag_run_conf``: the status and detail of the
    refusal it gets."""
    body = client.BackfillPostBody(
        dag_id=dag_id,
        from_date=datetime(2026, 1, 1, tzinfo=UTC),
        to_date=datetime(2026, 1, 3, tzinfo=UTC),
        dag_run_conf=conf,
    )
    backfills = client.BackfillApi(api)
    with pytest.raises(client.ApiException) as refused:
        (backfills.create_backfill_dry_run if dry_run else backfills.create_backfill)(body)
    detail = json.loads(refused.value.body)["detail"]
    return refused.value.status, detail if isinstance(detail, str) else json.dumps(detail)


def _post(airflow, dag_id: str, conf: dict, headers: dict) -> tuple[int, str]:
    """A trigger as the UI's form sends it (no REST client): the session cookie, a Referer."""
    request = urllib.request.Request(
        f"{airflow.url}/api/v2/dags/{dag_id}/dagRuns",
        json.dumps({"logical_date": None, "conf": conf}).encode(),
        {"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.slow
def test_a_trigger_that_its_run_would_ignore_or_its_nodes_refuse_is_answered_400(airflow, client, api):
    dag = "nightly-training"
    detail = _refused(client, api, dag, {"reuse_execution": False})
    assert detail.startswith("conf key 'reuse_execution' is neither a run option nor a pipeline parameter")
    assert "(did you mean 'reuse_executions'?)" in detail
    assert "not an integer" in _refused(client, api, dag, {"epochs": 3.0})
    assert _refused(client, api, dag, {"epochs": "three"}) == (
        "Invalid input for param epochs: 'three' is not of type 'integer', 'null'"
    )
    assert "maximum allowed (5)" in _refused(client, api, "secrets", {"rows": 9})
    # the UI's form: the same endpoint, the session's cookie instead of a bearer token
    ui = {"Cookie": f"_token={airflow.token}", "Referer": f"{airflow.url}/dags/{dag}"}
    status, body = _post(airflow, dag, {"reuse_execution": False}, ui)
    assert status == 400 and "did you mean 'reuse_executions'" in body
    # no credentials: Airflow's own answer, which tells nothing about the DAG's Params
    status, body = _post(airflow, dag, {"reuse_execution": False}, {})
    assert status == 401 and "reuse" not in body
    # a backfill gives its conf to each of its runs: refused alike, created or dry run
    for dry_run in (False, True):
        status, detail = _backfill(client, api, dag, {"reuse_execution": False}, dry_run)
        assert status == 400 and "(did you mean 'reuse_executions'?)" in detail, detail
    status, detail = _backfill(client, api, dag, {"epochs": 3.0}, False)
    assert status == 400 and "not an integer" in detail, detail
    # a conf the middleware accepts reaches Airflow, which answers for itself (this DAG has no schedule)
    status, detail = _backfill(client, api, dag, {"epochs": 3}, True)
    assert status == 422 and "neither a run option" not in detail, detail
    runs = client.DagRunApi(api).get_dag_runs(dag)
    assert runs.total_entries == 0  # no refused trigger made a run


@pytest.mark.slow
def test_no_secret_reaches_the_rest_api_or_the_plugins_pages(airflow, client, api):
    airflow.api("dags/secrets", "PATCH", {"is_paused": False})
    run_id = _trigger(client, api, "secrets", {"rows": 4, "reuse_executions": None})
    runs = client.DagRunApi(api)
    state = airflow.finished(
        "secrets", run_id, state=lambda: str(runs.get_dag_run("secrets", run_id).state.value)
    )
    assert state == "success"
    details = client.DAGApi(api).get_dag_details("secrets")
    seen: dict[str, str] = {"doc": details.doc_md, "params": json.dumps(details.params)}
    instance = client.TaskInstanceApi(api).get_task_instance("secrets", run_id, "fetch")
    seen["rendered"] = json.dumps(instance.rendered_fields)
    xcom = client.XComApi(api).get_xcom_entry(
        "secrets", "fetch", run_id, "valohai_execution", deserialize=True
    )
    seen["xcom"] = str(getattr(xcom, "actual_instance", xcom).value)
    log = client.TaskInstanceApi(api).get_log("secrets", run_id, "fetch", 1, full_content=True)
    seen["log"] = str(log.content)
    seen["run"] = _plugin(api, f"/api/runs/secrets/{quote(run_id, safe='')}")
    status, seen["reuse nodes"] = _page(api, f"/reuse-nodes?dag_id=secrets&run_id={quote(run_id, safe='')}")
    assert (
        status == 200
        and "api_password" in seen["reuse nodes"]
        and "a secret: not shown" in seen["reuse nodes"]
    )
    execution_id = json.loads(seen["run"])["nodes"][0]["execution_id"]
    status, seen["page"] = _page(api, f"/executions/{execution_id[:8]}")  # the short id the pages show
    assert status == 200 and execution_id in seen["page"]
    leaked = {where: [s for s in SECRETS if s in text] for where, text in seen.items()}
    assert not any(leaked.values()), leaked
    assert "token=***" in seen["log"] and "--rows=4" in seen["rendered"]  # what the step did is shown
    status, text = _page(api, f"/executions/{execution_id[:6]}")
    assert status == 404 and "a short id needs at least 8 characters" in text


def _page(api, path: str) -> tuple[int, str]:
    url = f"{api.configuration.host}/valohai-reuse{path}"
    answer = api.call_api(
        "GET", url, header_params={"Authorization": f"Bearer {api.configuration.access_token}"}
    )
    answer.read()
    return answer.status, answer.data.decode()


def _plugin(api, path: str) -> str:
    status, text = _page(api, path)
    assert status == 200, text
    return text
