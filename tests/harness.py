"""Running built DAGs for real with ``dag.test()`` and reading what they left behind."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.contracts import STATUS_TASK
from airflow_valohai_reuse.operators.reusable_docker import XCOM_KEY


def copy_project(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def sync(dag: Any) -> None:
    """dag.test() needs the DAG serialized; a DAG built in a test lives in no bundle."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder="/dev/null")
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


@dataclass
class RunResult:
    state: str
    task_states: dict[str, str]
    xcoms: dict[str, dict[str, Any]]
    containers_started: int
    run_id: str = ""


def xcom(run_id: str, dag_id: str, task_id: str) -> Any:
    """A task's ``valohai_execution``: one value, or for a mapped task a list by map index."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(XComModel)
            .filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=XCOM_KEY)
            .order_by(XComModel.map_index)
            .all()
        )
        values = [XComModel.deserialize_value(row) for row in rows]
        if len(rows) == 1 and rows[0].map_index == -1:
            return values[0]
        return values or None


def run(dag: Any, docker_client: Any, conf: dict[str, Any] | None = None) -> RunResult:
    """Run the whole DAG in-process and count the containers the Docker daemon started meanwhile."""
    sync(dag)
    since = int(time.time()) - 1
    dr = dag.test(run_conf=conf or {})
    until = int(time.time()) + 1
    events = docker_client.api.events(
        since=since,
        until=until,
        decode=True,
        filters={"type": "container", "event": "start", "label": f"io.valohai-reuse.run-id={dr.run_id}"},
    )
    started = sum(1 for _ in events)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    nodes = [t for t in states if t != STATUS_TASK]  # the pipeline's result task publishes no execution
    xcoms = {task_id: xcom(dr.run_id, dag.dag_id, task_id) for task_id in nodes}
    return RunResult(str(dr.state), states, xcoms, started, dr.run_id)
