"""The plugin's JSON API, beside its pages under ``/valohai-reuse/api``: the same figures and rows, for
scripts and other tools. The same auth as the pages: a signed-in user, DAGs the user may read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import APIRouter, Depends, HTTPException, Query

from airflow_valohai_reuse.cache import aggregates, refusals, rows
from airflow_valohai_reuse.cache.scope import Scope
from airflow_valohai_reuse.plugins import lookups
from airflow_valohai_reuse.plugins.cachedb import cache_connection

router = APIRouter(prefix="/api")


@router.get("/stats")
def stats(user: GetUserDep, days: int = Query(7, ge=1, le=3660)) -> dict[str, Any]:
    """Per pipeline and per step over the last ``days``: as ``valohai-reuse stats --json`` prints."""
    scope = Scope(datetime.now(UTC) - timedelta(days=days), lookups.readable_dags(user))
    with cache_connection() as conn:
        found = aggregates.stats(conn, scope, busiest_first=True, size=1000)
    return {"days": days, **found}


@router.get(
    "/runs/{dag_id}/{run_id}", dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))]
)
def run(dag_id: str, run_id: str) -> dict[str, Any]:
    """A DAG run's nodes: ran, reused or pinned, the execution, where it came from, time saved, why;
    its refused pins (node → reason). 404 for a run Airflow does not have and the ledger never saw."""
    with cache_connection() as conn:
        view = rows.run_view(conn, dag_id, run_id)
        refused = refusals.read(conn, dag_id, run_id)
    if not view.rows and lookups.run_state(dag_id, run_id) is None:
        raise HTTPException(404, f"No such run: DAG {dag_id} has no run {run_id!r}")
    keys = ("task_id", "map_index", "node", "step", "kind", "execution_id", "saved_s", "reason", "source")
    nodes = [{key: row.get(key) for key in keys} for row in view.rows]
    saved = round(view.saved_s, 3)
    return {"dag_id": dag_id, "run_id": run_id, "saved_seconds": saved, "nodes": nodes, "refused": refused}
