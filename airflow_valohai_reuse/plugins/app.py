"""The plugin's web app, mounted by Airflow's API server at ``/valohai-reuse``: the Execution reuse page,
execution pages, and the views of a DAG run (Reuse, Reuse nodes) and of a DAG (Plan).

Server-rendered HTML that the Airflow UI shows in its frames. Every route needs a signed-in Airflow
user: ``get_user`` reads the JWT the UI keeps in its cookie (or a bearer token) and refuses a request
without one (401) or with a bad one (403); the run and DAG views also ask the auth manager whether the
user may read that DAG's runs, and the other pages show only the DAGs the user may read. Figures are
aggregated in SQL (cache/aggregates.py) and lists are paged (cache/rows.py), so a page costs the same
with 100 entries or 100,000. Triggering a run is left to Airflow's REST API, called from the page with
the user's session.
"""

from __future__ import annotations

import json
import posixpath
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader

from airflow_valohai_reuse.cache import aggregates, ids, refusals, rows
from airflow_valohai_reuse.cache.scope import Scope
from airflow_valohai_reuse.contracts import REUSED_KINDS, Kind
from airflow_valohai_reuse.fingerprint.components import describe, diff
from airflow_valohai_reuse.plugins import api, display, downloads, graph, lookups, rungraph, steering
from airflow_valohai_reuse.plugins.cachedb import CacheUnavailable, cache_connection
from airflow_valohai_reuse.plugins.links import APP_PREFIX, task_instance_path
from airflow_valohai_reuse.settings import price_per_hour

app = FastAPI(title="Execution reuse", docs_url=None, redoc_url=None, openapi_url=None)
app.include_router(api.router)

_templates = Environment(loader=PackageLoader("airflow_valohai_reuse.plugins", "templates"), autoescape=True)
_templates.filters.update(display.FILTERS)
_templates.filters["badge_class"] = graph.badge_class
_templates.globals["ti_path"] = task_instance_path
_templates.globals["is_reused"] = lambda kind: Kind(kind).reused  # "reused" is a count in run.html

WINDOWS = (7, 30)
PAGE = 20
RunReader = Depends(requires_access_dag("GET", DagAccessEntity.RUN))
PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]


@app.exception_handler(CacheUnavailable)
def _cache_unavailable(request: Request, exc: CacheUnavailable) -> HTMLResponse:
    return _page(request, "error.html", 503, message=f"The execution cache cannot be read: {exc}")


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    base = request.scope.get("root_path", "").rstrip("/") or APP_PREFIX
    ui = base.removesuffix(APP_PREFIX) + "/"

    def here(**changes: Any) -> str:
        return f"{request.url.path}?{urlencode({**request.query_params, **changes})}"

    html = _templates.get_template(template).render(app=base, ui=ui, here=here, **context)
    return HTMLResponse(html, status_code=status)


@app.get("/", response_class=HTMLResponse)
def dashboard(
    request: Request,
    user: GetUserDep,
    days: int = 7,
    page: PageNumber = 1,
    pipelines: PageNumber = 1,
    steps: PageNumber = 1,
    misses: PageNumber = 1,
) -> HTMLResponse:
    days = days if days in WINDOWS else WINDOWS[0]
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    scope = Scope(datetime.combine(first, datetime.min.time(), UTC), lookups.readable_dags(user))
    prices = price_per_hour()
    with cache_connection() as conn:
        by_pipeline = aggregates.tallies(conn, scope, "pipeline", page=pipelines, size=10)
        by_step = aggregates.tallies(conn, scope, "step", page=steps, size=10)
        cost, unpriced = None, 0.0
        if prices:
            cost, unpriced = display.saved_cost(aggregates.saved_by_environment(conn, scope), prices)
        days_found = aggregates.saved_per_day(conn, scope)
        context = {
            "totals": aggregates.totals(days_found),
            "chart": display.chart(days_found, first, today),
            "pipelines": by_pipeline[0],
            "pipeline_pages": rows.Page([], by_pipeline[1], pipelines, 10),
            "steps": by_step[0],
            "step_pages": rows.Page([], by_step[1], steps, 10),
            "misses": rows.recent_misses(conn, scope, page=misses),
            "entries": rows.recent_entries(conn, scope.dag_ids, page=page, size=PAGE),
        }
    return _page(
        request, "dashboard.html", days=days, windows=WINDOWS, cost=cost, unpriced=unpriced, **context
    )


@app.get("/executions/{execution_id}", response_class=HTMLResponse)
def execution_page(
    request: Request, execution_id: str, user: GetUserDep, page: PageNumber = 1
) -> HTMLResponse:
    dag_ids = lookups.readable_dags(user)
    with cache_connection() as conn:
        try:
            execution_id = ids.resolve(conn, execution_id, dag_ids)  # a short id as the pages show it
        except ids.ExecutionIdError as exc:
            return _page(request, "error.html", 404, message=f"{exc}.")
        found = rows.execution(conn, execution_id, dag_ids)
        if found is None:
            return _page(
                request, "error.html", 404, message=f"No execution {execution_id} that you may read."
            )
        reusers = rows.reusers(conn, execution_id, dag_ids, page=page, size=PAGE)
        before = rows.previous(conn, found["step"], found["finished_at"], execution_id)
    changes = None
    if before is not None:
        changes = {"id": before["id"], "words": describe(diff(before["components"], found["components"]))}
    printed = found["exec_metadata"].get("metadata", {})
    return _page(
        request,
        "execution.html",
        e=found,
        reusers=reusers,
        changes=changes,
        metrics=display.metrics(printed, found["metadata_series"]),
        previews=_previews(found["outputs"]),
    )


def _previews(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        return downloads.previews(downloads.store(), outputs)
    except Exception:  # no store configured here, or it cannot be reached: the page shows the rest
        return {}


@app.get("/executions/{execution_id}/outputs/{name:path}", response_model=None)
def download_output(
    request: Request, execution_id: str, name: str, user: GetUserDep
) -> FileResponse | RedirectResponse | HTMLResponse:
    """One output's bytes, for a user who may read the execution's DAG runs (RunReader's check): a
    local store's file streamed as an attachment, an S3 store's through a short-lived presigned URL."""
    with cache_connection() as conn:
        found = rows.execution(conn, execution_id, lookups.readable_dags(user))
    output = next((o for o in (found or {}).get("outputs", []) if o["name"] == name), None)
    if found is None or output is None:
        return _page(request, "error.html", 404, message=f"No output {name} of execution {execution_id}.")
    requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=found["dag_id"])(request, user)
    artifacts = downloads.store()
    filename = posixpath.basename(name)
    path = downloads.local_path(artifacts, output["uri"])
    if path is not None and path.is_file():
        return FileResponse(
            path,
            media_type="application/octet-stream",  # never rendered on the UI's origin
            filename=filename,
            headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
        )
    url = downloads.presigned_url(artifacts, output["uri"], filename)
    if url is not None:
        return RedirectResponse(url, status_code=307)
    return _page(request, "error.html", 404, message=f"{output['uri']} is not in the artifact store.")


@app.get("/run", response_class=HTMLResponse, dependencies=[RunReader])
def run_page(request: Request, dag_id: str, run_id: str, task_id: str | None = None) -> HTMLResponse:
    """A run's graph and nodes, or (``task_id``: the task instance's Reuse tab) one node's."""
    with cache_connection() as conn:
        view = rows.run_view(conn, dag_id, run_id)
        refused = refusals.read(conn, dag_id, run_id)
    state = lookups.run_state(dag_id, run_id)
    if state is None and not view.rows:
        return _no_such_run(request, dag_id, run_id)
    published = {(r["task_id"], r["map_index"]) for r in view.rows}
    # nodes that published nothing (failed, upstream failed, skipped, not run yet), with Airflow's state
    unpublished = [
        n for n in lookups.node_states(dag_id, run_id) if (n["task_id"], n["map_index"]) not in published
    ]
    pipeline = None
    if task_id is None:
        pipeline = rungraph.run_graph(dag_id, view, unpublished, refused)
    else:
        view.rows = [r for r in view.rows if r["task_id"] == task_id]
        unpublished = [n for n in unpublished if n["task_id"] == task_id]
    kinds = [r["kind"] for r in view.rows]
    reused = sum(k in REUSED_KINDS for k in kinds)
    return _page(
        request,
        "run.html",
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        view=view,
        unpublished=unpublished,
        reused=reused,
        ran=len(kinds) - reused,
        state=state,
        graph=pipeline,
        refused=refused,
    )


def _no_such_run(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
    return _page(request, "error.html", 404, message=f"No such run: DAG {dag_id} has no run {run_id!r}.")


def _nodes(view: rows.RunView) -> list[dict[str, Any]]:
    """One row per node of the run; a task node's variants make one row that cannot be pinned."""
    nodes: dict[str, dict[str, Any]] = {}
    for row in view.rows:
        node = nodes.setdefault(row["node"] or row["task_id"], {**row, "variants": 0, "mapped": False})
        node["variants"] += 1
        node["mapped"] = node["mapped"] or row["map_index"] >= 0
    return list(nodes.values())


@app.get("/reuse-nodes", response_class=HTMLResponse, dependencies=[RunReader])
def reuse_nodes_page(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
    with cache_connection() as conn:
        view = rows.run_view(conn, dag_id, run_id)
    state = lookups.run_state(dag_id, run_id)
    if state is None and not view.rows:
        return _no_such_run(request, dag_id, run_id)
    params = steering.parameters(dag_id, steering.run_conf(dag_id, run_id))
    return _page(
        request,
        "reuse_nodes.html",
        dag_id=dag_id,
        run_id=run_id,
        nodes=_nodes(view),
        state=state,
        parameters=params,
    )


@app.get("/plan", response_class=HTMLResponse, dependencies=[RunReader])
def plan_page(request: Request, dag_id: str, conf: str = "{}") -> HTMLResponse:
    context: dict[str, Any] = {"dag_id": dag_id, "conf_text": conf, "plans": None, "where": None}
    where = lookups.pipeline_file(dag_id)
    if where is None:
        return _page(
            request, "plan.html", error=f"{dag_id} is not a DAG made from a valohai.yaml.", **context
        )
    context["where"] = where
    try:
        given = json.loads(conf or "{}")
        if not isinstance(given, dict):
            raise ValueError("the conf must be a JSON object")
    except ValueError as exc:
        return _page(request, "plan.html", 400, error=f"conf: {exc}", **context)
    return _page(request, "plan.html", **{**context, **_plan(where, given)})


def _plan(where: lookups.PipelineFile, conf: dict[str, Any]) -> dict[str, Any]:
    """The prediction, or the reason there is none (a bad conf, a pin that does not fit, no Docker)."""
    # the Plan view alone needs the planner and its Docker client (0.4 s of imports in the API server)
    from airflow_valohai_reuse.reuse.plan import HIT, MISS, UNKNOWN, plan

    try:
        plans = plan(where.path, where.pipeline, conf)
    except Exception as exc:  # the page shows why, as the command would
        return {"error": f"{type(exc).__name__}: {exc}"}
    count = {s: sum(p.status == s for p in plans) for s in (HIT, MISS, UNKNOWN)}
    saved = sum(p.saved_s or 0.0 for p in plans if p.status == HIT)
    return {
        "plans": plans,
        "hits": count[HIT],
        "misses": count[MISS],
        "unknown": count[UNKNOWN],
        "saved_s": saved,
    }
