"""A run is named by its DAG and its id: two DAGs of one pipeline (one valohai.yaml loaded with two
``dag_id_prefix``, as prod and staging) whose runs share an id (runs of one date, or a REST caller's
chosen ``dag_run_id``) never read each other's run ledger. Real runs, real containers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harness import copy_project, sync, xcom

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.errors import ManualReuseError
from airflow_valohai_reuse.reuse.plan import plan

pytestmark = pytest.mark.slow

BASIC = Path(__file__).resolve().parent / "pipelines" / "basic"
DAY = datetime(2025, 3, 1, tzinfo=UTC)
OTHER_DAY = datetime(2025, 3, 2, tzinfo=UTC)


def _run(project: Path, prefix: str, conf: dict | None = None, day: datetime | None = None) -> Any:
    """A run of the DAG built anew; runs of the same ``day`` (of any DAG) get the same run id."""
    dag = build_dags(project / "valohai.yaml", dag_id_prefix=prefix)[f"{prefix}basic"]
    sync(dag)
    dr = dag.test(run_conf=conf or {}, **({"logical_date": day, "run_after": day} if day else {}))
    return dr, {t: xcom(dr.run_id, dag.dag_id, t) for t in ("prepare", "fit", "report")}


@pytest.fixture
def projects(reuse_env):
    prod = copy_project(BASIC, reuse_env / "prod")
    staging = copy_project(BASIC, reuse_env / "staging")
    (staging / "raw.txt").write_text("staging data\n")  # staging's prepare is another execution
    return prod, staging


def test_reuse_from_run_publishes_its_own_dags_execution_never_another_dags(projects, docker_client):
    prod, staging = projects
    # staging's run of the day comes first: its rows are the older ones in the ledger
    staged, stg_xcoms = _run(staging, "stg_", day=DAY)
    stg_only, _ = _run(staging, "stg_", day=OTHER_DAY)
    first, prod_xcoms = _run(prod, "prod_", day=DAY)
    assert (staged.state, stg_only.state, first.state) == ("success",) * 3
    assert first.run_id == staged.run_id
    prod_prepare = prod_xcoms["prepare"]["execution_id"]
    assert prod_prepare != stg_xcoms["prepare"]["execution_id"]

    conf = {"reuse_from_run": {"run_id": first.run_id, "nodes": ["prepare"]}}
    (predicted, *_) = plan(prod / "valohai.yaml", "prod_basic", conf)
    assert predicted.source_execution == prod_prepare

    again, xcoms = _run(prod, "prod_", conf)
    assert again.state == "success"
    assert xcoms["prepare"]["kind"] == "pinned"
    assert xcoms["prepare"]["execution_id"] == prod_prepare
    assert xcoms["fit"]["execution_id"] == prod_xcoms["fit"]["execution_id"]  # prod's data, reused

    # a run only staging has is no run of prod's
    elsewhere = {"reuse_from_run": {"run_id": stg_only.run_id, "nodes": ["prepare"]}}
    with pytest.raises(ManualReuseError, match="is in the run ledger \\(of DAG 'prod_basic'\\)"):
        plan(prod / "valohai.yaml", "prod_basic", elsewhere)
    refused, _ = _run(prod, "prod_", elsewhere)
    assert refused.state == "failed"
