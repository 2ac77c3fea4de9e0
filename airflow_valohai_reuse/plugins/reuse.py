"""The Airflow plugin: the Execution reuse page and the reuse views of DAGs and runs (a FastAPI app shown
through external views), the extra links of node tasks, and the API server middleware that refuses at
trigger time a conf a pipeline DAG's run would ignore or its nodes would refuse (:mod:`~.confcheck`),
and the listener that notes reuse on task instances and runs when a run ends (:mod:`~.notes`).

Airflow loads every plugin in every task process (for its macros), so the app and the links are built
when Airflow first asks for them, in the API server: a task does not pay for importing FastAPI. Each
view has its own icon (:mod:`~.icons`), so the tabs of a run tell apart in the Graph and Grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_valohai_reuse.contracts import APP_PREFIX, NAV_ROUTE
from airflow_valohai_reuse.plugins.icons import icons


class _Built:
    """A plugin attribute made on first read and kept."""

    def __init__(self, build: Callable[[], list[Any]]) -> None:
        self._build = build
        self._value: list[Any] | None = None

    def __get__(self, instance: object, owner: type) -> list[Any]:
        if self._value is None:
            self._value = self._build()
        return self._value


def _fastapi_apps() -> list[Any]:
    # made in the API server on first use, so a task process never imports it (see above)
    from airflow_valohai_reuse.plugins.app import app

    return [{"app": app, "url_prefix": APP_PREFIX, "name": "Execution reuse"}]


def _middlewares() -> list[Any]:
    # made in the API server on first use, so a task process never imports it (see above)
    from airflow_valohai_reuse.plugins.confcheck import ConfCheck

    return [{"middleware": ConfCheck, "args": [], "kwargs": {}, "name": "Valohai reuse trigger conf check"}]


def _listeners() -> list[Any]:
    # made in the API server on first use, so a task process never imports it (see above)
    from airflow_valohai_reuse.plugins.notes import listener

    return [listener]


def _links() -> list[Any]:
    # made in the API server on first use, so a task process never imports it (see above)
    from airflow_valohai_reuse.plugins.links import OutputsLink, SourceExecutionLink

    return [SourceExecutionLink(), OutputsLink()]


# hrefs are relative to the UI's base URL; {DAG_ID} and {RUN_ID} are filled in by the UI
EXTERNAL_VIEWS = [
    {
        "name": "Execution reuse",
        "href": "valohai-reuse/",
        "destination": "nav",
        "url_route": NAV_ROUTE,
        "category": "browse",
        **icons("dashboard"),
    },
    {
        "name": "Reuse",
        "href": "valohai-reuse/run?dag_id={DAG_ID}&run_id={RUN_ID}",
        "destination": "dag_run",
        "url_route": "reuse",
        **icons("reuse"),
    },
    {
        "name": "Reuse",
        "href": "valohai-reuse/run?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}",
        "destination": "task_instance",
        "url_route": "task-reuse",  # routes are looked up across destinations: each its own
        **icons("reuse"),
    },
    {
        "name": "Reuse nodes",
        "href": "valohai-reuse/reuse-nodes?dag_id={DAG_ID}&run_id={RUN_ID}",
        "destination": "dag_run",
        "url_route": "reuse-nodes",
        **icons("pin"),
    },
    {
        "name": "Plan",
        "href": "valohai-reuse/plan?dag_id={DAG_ID}",
        "destination": "dag",
        "url_route": "reuse-plan",
        **icons("plan"),
    },
]


class ValohaiReusePlugin(AirflowPlugin):
    name = "valohai_reuse"
    external_views = EXTERNAL_VIEWS
    fastapi_apps = _Built(_fastapi_apps)  # type: ignore[assignment]
    fastapi_root_middlewares = _Built(_middlewares)  # type: ignore[assignment]
    listeners = _Built(_listeners)  # type: ignore[assignment]  # reuse notes (notes.py)
    operator_extra_links = _Built(_links)  # type: ignore[assignment]
