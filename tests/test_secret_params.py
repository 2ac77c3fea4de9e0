"""A secret's valohai.yaml default is never written into what Airflow stores or shows: the Param of a
secret pipeline parameter (or of a step DAG's secret parameter) has a null default, a task node's secret
variant values are references in its expand input, and the node takes the real values from valohai.yaml
when it runs. ``valohai-reuse plan --conf`` refuses what a trigger refuses, in the same words."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from harness import run

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.pipeline.params import WITHHELD

PATTERNS = "*SECRET*,*PASSWORD*,*TOKEN*"
#: the values valohai.yaml gives secrets; none may reach Airflow
DEFAULTS = (
    "step-s3cr3t-default",
    "pipeline-s3cr3t-default",
    "target-s3cr3t-default",
    "variant-s3cr3t-one",
    "variant-s3cr3t-two",
)
GIVEN = "conf-s3cr3t-given"

PIPELINE = """\
- step:
    name: login
    image: valohai-reuse-example:busybox
    command:
      - echo "rows {parameter-value:rows}"
      - echo "{parameter-value:api_token} {parameter-value:key}" > /valohai/outputs/token.txt
    parameters:
      - name: api_token
        type: string
        default: step-s3cr3t-default
      - name: key
        type: string
        default: step-key
      - name: rows
        type: integer
        default: 3
- task:
    name: tokens
    step: login
    type: grid_search
    parameters:
      - name: api_token
        style: multiple
        rules:
          items: [variant-s3cr3t-one, variant-s3cr3t-two]
- pipeline:
    name: secrets
    parameters:
      - name: api_token
        target: login.parameter.api_token
        default: pipeline-s3cr3t-default
      - name: signing
        target: login.parameter.key
        description: the signing key
        default: plain-pipeline-key
      - name: rows
        target: login.parameter.rows
        default: 4
    nodes:
      - name: login
        type: execution
        step: login
      - name: sweep
        type: task
        task: tokens
    edges: []
- pipeline:
    name: aimed
    parameters:
      - name: credentials
        target: login.parameter.api_token
        default: target-s3cr3t-default
    nodes:
      - name: login
        type: execution
        step: login
    edges: []
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__SECRET_ENV_PATTERNS", PATTERNS)
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__STEP_DAGS", "true")
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "valohai.yaml").write_text(PIPELINE)
    return folder / "valohai.yaml"


def _stored(dag) -> str:
    from airflow.serialization.serialized_objects import DagSerialization

    return json.dumps(DagSerialization.to_dict(dag))


def test_no_secret_default_is_in_a_serialized_dag_and_its_param_says_why(project):
    dags = build_dags(project)
    assert set(dags) == {"secrets", "aimed", "step_login"}
    for dag in dags.values():
        stored = _stored(dag)
        assert not [s for s in DEFAULTS if s in stored], dag.dag_id
    params = dags["secrets"].params
    assert params["api_token"] is None and WITHHELD in params.get_param("api_token").description
    assert params["rows"] == 4 and params["signing"] == "plain-pipeline-key"  # the rest as written
    assert params.get_param("signing").description == "the signing key"
    # a pipeline parameter named like nothing secret, that sets a secret step parameter, is a secret
    assert dags["aimed"].params["credentials"] is None
    # a step DAG's Params are its step's parameters
    assert dags["step_login"].params["api_token"] is None and dags["step_login"].params["key"] == "step-key"


def test_plan_refuses_an_unknown_conf_key_with_the_trigger_s_words_and_exit_code_2(project, capsys):
    from airflow_valohai_reuse.cli import main

    assert main(["plan", str(project), "secrets", "--conf", '{"reuse_execution": false}']) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "valohai-reuse: the trigger would refuse this conf: conf key 'reuse_execution' is neither a run "
        "option nor a pipeline parameter (did you mean 'reuse_executions'?); the keys are: api_token, "
        "reuse_executions, reuse_from_run, reuse_nodes, rows, signing"
    )
    assert main(["plan", str(project), "secrets", "--conf", '{"rows": 3.0}']) == 2
    assert "Invalid input for param rows: 3.0 is not an integer" in capsys.readouterr().err


def _metadata_bytes() -> bytes:
    """Everything the metadata database holds, as its SQLite files hold it."""
    from airflow.configuration import conf

    url = conf.get("database", "sql_alchemy_conn")
    assert url.startswith("sqlite:///"), url
    path = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def _rows(table: str, dag_id: str) -> str:
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        rows = session.execute(text(f"select * from {table} where dag_id = :d"), {"d": dag_id}).all()
    return repr(rows)


def _log_files() -> list[Path]:
    from airflow.configuration import conf

    return [p for p in Path(conf.get("logging", "base_log_folder")).rglob("*") if p.is_file()]


def _token(result, task: str) -> list[str]:
    found = result.xcoms[task]
    values = found if isinstance(found, list) else [found]
    return [
        Path(o["uri"].removeprefix("file://")).read_text().strip()
        for value in values
        for o in value["outputs"]
        if o["name"] == "token.txt"
    ]


@pytest.mark.slow
def test_a_run_gets_the_secret_defaults_in_its_containers_and_airflow_stores_none(
    project, reuse_env, docker_client, capfd
):
    dag = build_dags(project)["secrets"]
    first = run(dag, docker_client)
    assert first.state == "success", first.task_states
    # the pipeline parameter's default, not the step's; each variant its own; the rest as the Params say
    assert _token(first, "login") == ["pipeline-s3cr3t-default plain-pipeline-key"]
    assert _token(first, "sweep") == ["variant-s3cr3t-one step-key", "variant-s3cr3t-two step-key"]
    given = run(build_dags(project)["secrets"], docker_client, {"api_token": GIVEN, "signing": "other"})
    assert given.state == "success", given.task_states
    assert _token(given, "login") == [f"{GIVEN} other"]
    assert given.xcoms["login"]["reused"] is False
    again = run(build_dags(project)["secrets"], docker_client, {"reuse_executions": True})
    assert again.xcoms["login"]["reused"] is True  # the default, taken by the node, is the same again
    out = capfd.readouterr()
    logs = out.out + out.err + "".join(p.read_text(errors="replace") for p in _log_files())
    # what the product logs names no secret (a container that prints one is masked by Airflow's log
    # redaction in a worker, which dag.test()'s console does not apply: see test_conf_refused.py)
    assert "rows 4" in logs and "rows 3" in logs
    stored = _metadata_bytes()
    for secret in DEFAULTS:
        assert secret not in logs, secret
        assert secret.encode() not in stored, secret
    assert not re.search(GIVEN, logs)
    # the value a user gave is in the run's conf (Airflow keeps it), and nowhere else
    for table in ("xcom", "rendered_task_instance_fields", "task_instance", "serialized_dag"):
        assert GIVEN not in _rows(table, "secrets"), table
