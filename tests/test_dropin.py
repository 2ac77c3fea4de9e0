"""The DAG-folder drop-in, parsed by Airflow's own DagBag."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

pytestmark = pytest.mark.usefixtures("airflow_db")  # DagBag.get_dag reads the metadata database

ROOT = Path(__file__).resolve().parent.parent
BASIC = Path(__file__).resolve().parent / "pipelines" / "basic"


@pytest.fixture
def dag_folder(tmp_path, monkeypatch):
    dags = tmp_path / "dags"
    dags.mkdir()
    for name in ("valohai_pipelines.py", "valohai_pipelines_check.py"):
        shutil.copy(ROOT / "dags" / name, dags / name)
    shutil.copytree(BASIC, dags / "good")
    monkeypatch.delenv("AIRFLOW__VALOHAI_REUSE__PIPELINES_FOLDER", raising=False)
    return dags


def test_good_files_become_dags(dag_folder):
    bag = DagBag(dag_folder=str(dag_folder))
    assert bag.import_errors == {}
    assert {"basic", "failing"} <= set(bag.dag_ids)
    basic = bag.get_dag("basic")
    assert sorted(basic.task_ids) == ["fit", "prepare", "report"]
    assert basic.params["reuse_executions"] is True
    assert basic.params["reuse_nodes"] == {}
    assert basic.params["epochs"] == 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- step: {name: a, image: x, command: [ls]\n", "YAML syntax"),
        ("- step:\n    name: a\n    command: ls\n", "'image' is a required property"),
        (
            "- pipeline: {name: p, nodes: [{name: n, type: execution, step: missing}], edges: []}\n",
            "step 'missing'",
        ),
    ],
)
def test_broken_file_is_an_import_error_and_others_still_load(dag_folder, text, problem):
    broken = dag_folder / "broken" / "valohai.yaml"
    broken.parent.mkdir()
    broken.write_text(text)
    bag = DagBag(dag_folder=str(dag_folder))
    assert {"basic", "failing"} <= set(bag.dag_ids)
    assert list(bag.import_errors) == ["valohai_pipelines_check.py"] or list(bag.import_errors) == [
        str(dag_folder / "valohai_pipelines_check.py")
    ]
    message = next(iter(bag.import_errors.values()))
    assert str(broken) in message
    assert problem in message


def test_schedule_comes_from_config_without_editing_the_file(dag_folder, monkeypatch):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__SCHEDULES", '{"basic": "0 2 * * *"}')
    bag = DagBag(dag_folder=str(dag_folder))
    assert bag.get_dag("basic").timetable.expression == "0 2 * * *"
    assert not bag.get_dag("failing").timetable.can_be_scheduled


def test_a_cache_connection_that_cannot_be_read_hides_no_pipeline(dag_folder, monkeypatch):
    """A parse never opens the cache, so it never looks its connection up: a wrong cache_conn_id is
    the tasks' error, naming the option, not the DAG folder's."""
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__CACHE_CONN_ID", "no_such_connection")
    bag = DagBag(dag_folder=str(dag_folder))
    assert bag.import_errors == {}
    assert {"basic", "failing"} <= set(bag.dag_ids)
