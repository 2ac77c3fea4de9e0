"""Extra links of node tasks: "Source execution" and "Outputs", read from the run ledger.

They are registered through the plugin for :class:`ReusableDockerOperator` rather than declared on
the operator class: a link declared on the class is computed on the worker when the task ends and
stored as one XCom per link (two more Execution API calls per node, a hit's whole budget), while a
link registered by a plugin is computed in the API server when someone opens the task, from the cache
database (never Airflow's metadata database), and so it is always current. A link that does not apply
(a node that ran has no source execution; a node that failed published nothing) is an empty string,
which the UI leaves out.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

from airflow_valohai_reuse.cache import rows
from airflow_valohai_reuse.cache.executions import engine_for
from airflow_valohai_reuse.contracts import APP_PREFIX, NAV_ROUTE, REUSED_KINDS

# Airflow matches a plugin's links to operators by class: this module is the plugin's one import of it
from airflow_valohai_reuse.operators.reusable_docker import ReusableDockerOperator
from airflow_valohai_reuse.settings import load_settings

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)


def task_instance_path(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """A task instance's page in the Airflow UI, relative to the UI's base URL."""
    path = f"dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    return f"{path}/mapped/{map_index}" if map_index is not None and map_index >= 0 else path


def execution_path(execution_id: str) -> str:
    """An execution's page of the plugin, inside the UI's "Execution reuse" page, relative to the base."""
    return f"plugin/{NAV_ROUTE}{APP_PREFIX}/executions/{quote(execution_id, safe='')}"


def _published(ti_key: TaskInstanceKey) -> tuple[str, str | None] | None:
    """The execution the task instance published and, if it reused it, the UI path of the task instance
    that ran it; None where the ledger has no row or the cache cannot be read (logged: a link is never
    worth an error page)."""
    try:
        with engine_for(load_settings().sql_alchemy_conn).connect() as conn:
            row = rows.ledger_row(conn, ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)
            if row is None:
                return None
            if row["kind"] not in REUSED_KINDS:
                return row["execution_id"], None
            found = rows.source(conn, row["execution_id"])
    except Exception as exc:
        log.warning("no extra link for %s: the execution cache cannot be read (%s)", ti_key, exc)
        return None
    where = task_instance_path(**found) if found else None
    return row["execution_id"], where


class SourceExecutionLink(BaseOperatorLink):
    """A reused or pinned node: the task instance whose execution it reused."""

    name = "Source execution"
    operators: ClassVar[list[type[BaseOperator]]] = [ReusableDockerOperator]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        found = _published(ti_key)
        return (found[1] or "") if found else ""


class OutputsLink(BaseOperatorLink):
    """Any node that published an execution: its outputs on the plugin's execution page."""

    name = "Outputs"
    operators: ClassVar[list[type[BaseOperator]]] = [ReusableDockerOperator]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        found = _published(ti_key)
        return execution_path(found[0]) + "#outputs" if found else ""
