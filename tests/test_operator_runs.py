"""Reuse decisions with real containers: what changes a fingerprint, what pins, what never caches."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import copy_project, run
from sqlalchemy import create_engine, text

from airflow_valohai_reuse import build_dags

pytestmark = pytest.mark.slow

BASIC = Path(__file__).resolve().parent / "pipelines" / "basic"


@pytest.fixture
def project(reuse_env):
    return copy_project(BASIC, reuse_env / "project")


@pytest.fixture
def dags(project):
    return build_dags(project / "valohai.yaml")


@pytest.fixture
def baseline(dags, docker_client):
    first = run(dags["basic"], docker_client)
    assert first.state == "success", first.task_states
    assert first.containers_started == 3
    return first


def _executions(reuse_env: Path, step: str) -> int:
    engine = create_engine(f"sqlite:///{reuse_env / 'cache.db'}")
    with engine.connect() as conn:
        return conn.execute(text("select count(*) from vr_executions where step = :s"), {"s": step}).scalar()


def test_metadata_and_parameter_edges_reach_downstream(baseline):
    assert baseline.xcoms["fit"]["metadata"] == {"loss": 0.5}
    assert baseline.xcoms["report"]["parameters"] == {"loss": 0.5}
    assert [o["name"] for o in baseline.xcoms["prepare"]["outputs"]] == ["data/clean.txt"]


def test_reuse_off_runs_every_node(dags, docker_client, baseline):
    again = run(dags["basic"], docker_client, {"reuse_executions": False})
    assert again.state == "success"
    assert again.containers_started == 3
    assert not any(x["reused"] for x in again.xcoms.values())


def test_changed_input_bytes_rerun_every_dependent_node(project, dags, docker_client, baseline):
    (project / "raw.txt").write_text("different words\n")
    again = run(dags["basic"], docker_client)
    assert again.state == "success"
    assert {t: x["reused"] for t, x in again.xcoms.items()} == {
        "prepare": False,
        "fit": False,
        "report": False,
    }
    assert again.xcoms["prepare"]["fingerprint"] != baseline.xcoms["prepare"]["fingerprint"]


def test_changed_parameter_reruns_that_node_and_reuses_upstream(dags, docker_client, baseline):
    again = run(dags["basic"], docker_client, {"epochs": 5})
    assert again.state == "success"
    assert again.xcoms["prepare"]["reused"] is True
    assert again.xcoms["fit"]["reused"] is False
    assert again.xcoms["fit"]["parameters"]["epochs"] == 5
    # report's input bytes changed with the model, so it runs too
    assert again.xcoms["report"]["reused"] is False
    assert again.containers_started == 2


def test_pinned_node_reuses_named_execution_even_with_reuse_off(dags, docker_client, baseline):
    pinned = baseline.xcoms["fit"]["execution_id"]
    again = run(dags["basic"], docker_client, {"reuse_executions": False, "reuse_nodes": {"fit": pinned}})
    assert again.state == "success"
    assert again.xcoms["fit"]["reused_from"] == pinned
    assert again.xcoms["prepare"]["reused"] is False
    assert again.containers_started == 2


def test_bad_pin_fails_before_anything_runs(dags, docker_client, baseline, capfd):
    again = run(dags["basic"], docker_client, {"reuse_nodes": {"fit": "no-such-execution"}})
    assert again.state == "failed"
    assert again.containers_started == 0
    # prepare is reused (no container); fit, the pinned node, fails on its own task
    assert (again.task_states["prepare"], again.task_states["fit"]) == ("success", "failed")
    out = capfd.readouterr()
    assert "reuse_nodes: node 'fit': no successful execution with id 'no-such-execution'" in out.out + out.err


def test_pin_of_a_node_the_pipeline_lacks_is_refused_at_trigger_time(dags, docker_client):
    from airflow.exceptions import ParamValidationError

    with pytest.raises(
        ParamValidationError, match="Invalid input for param reuse_nodes: 'nope' is not one of"
    ):
        run(dags["basic"], docker_client, {"reuse_nodes": {"nope": "x"}})


def test_pin_to_execution_of_another_step_fails_naming_both(dags, docker_client, baseline, capfd):
    other = baseline.xcoms["prepare"]["execution_id"]
    again = run(dags["basic"], docker_client, {"reuse_nodes": {"fit": other}})
    assert again.state == "failed"
    assert again.containers_started == 0
    out = capfd.readouterr()
    assert f"node 'fit' runs step 'fit' but execution {other} is of step 'prepare'" in out.out + out.err


def test_failing_step_is_never_cached(reuse_env, dags, docker_client):
    first = run(dags["failing"], docker_client)
    assert first.state == "failed"
    assert first.containers_started == 1
    assert first.xcoms["broken"] is None
    assert _executions(reuse_env, "broken") == 0
    assert not list((reuse_env / "artifacts").rglob("*")) or not any(
        p.is_file() for p in (reuse_env / "artifacts").rglob("*")
    )
    second = run(dags["failing"], docker_client)
    assert second.containers_started == 1
