"""What the pages ask Airflow (in the API server, where its metadata database may be read): which DAGs a
user may read, a run's state and its node tasks' states, and which valohai.yaml a DAG was built from."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.contracts import OPERATOR_NAME
from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.factory.dropin import find_pipeline_files
from airflow_valohai_reuse.pipeline.analysis import analyses
from airflow_valohai_reuse.settings import load_settings


def readable_dags(user: Any) -> Collection[str] | None:
    """The DAG ids the user may read; None when the user may read every DAG (then rows of DAGs that no
    longer exist show too)."""
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    if manager.is_authorized_dag(method="GET", user=user):
        return None
    return frozenset(manager.get_authorized_dag_ids(user=user, method="GET"))


def run_state(dag_id: str, run_id: str) -> str | None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return str(state) if state is not None else None


def node_states(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """The run's node task instances (``ReusableDockerOperator``) with their Airflow state: task id, map
    index, state (None: not scheduled yet); upstream nodes first (Airflow weighs a task by what follows
    it), then by task id."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(TI.task_id, TI.map_index, TI.state)
        .where(TI.dag_id == dag_id, TI.run_id == run_id, TI.operator == OPERATOR_NAME)
        .order_by(TI.priority_weight.desc(), TI.task_id, TI.map_index)
    )
    with create_session() as session:
        found = session.execute(query).all()
    return [{"task_id": t, "map_index": i, "state": str(s) if s is not None else None} for t, i, s in found]


def _dag_file(dag_id: str) -> str | None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(select(DagModel.fileloc).where(DagModel.dag_id == dag_id))


@dataclass(frozen=True)
class PipelineFile:
    path: Path
    pipeline: str


def pipeline_file(dag_id: str) -> PipelineFile | None:
    """The valohai.yaml and pipeline a DAG was built from, found as the drop-in DAG file finds them:
    under ``[valohai_reuse] pipelines_folder``, or the folder of the DAG's file, with the configured
    DAG id prefix. None for a DAG that no valohai.yaml there makes."""
    settings = load_settings()
    fileloc = _dag_file(dag_id)
    folder = settings.pipelines_folder or (str(Path(fileloc).parent) if fileloc else None)
    if not folder:
        return None
    for path in find_pipeline_files(folder):
        try:
            for _, analysis in analyses(path, None, settings.dag_id_prefix, dag_id):
                return PipelineFile(path, analysis.pipeline.name)
        except PipelineFileError:
            continue  # a broken file is reported by the drop-in's check file
    return None
