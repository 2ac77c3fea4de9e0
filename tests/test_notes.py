"""Reuse notes: the words of a task instance's and a run's note, which notes are ours to rewrite, and
(slow) the notes a real ``dag.test()`` run leaves in Airflow's metadata database, written by the
plugin's listener where the run ends, with a note someone wrote left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_valohai_reuse.plugins.notes import is_ours, replace, run_note, task_note

SOURCE = {"dag_id": "nightly", "run_id": "manual__2026-01-02", "task_id": "train", "map_index": -1}


def test_a_reused_node_names_its_execution_source_and_time_saved():
    row = {"kind": "reused", "execution_id": "0123456789abcdef", "source": SOURCE, "saved_s": 3.24}
    assert task_note(row) == "\u267b reused 01234567 from nightly/manual__2026-01-02/train \u00b7 saved 3.2 s"


def test_a_pinned_variant_names_its_map_index_and_minutes():
    row = {"kind": "pinned", "execution_id": "fedcba98", "source": {**SOURCE, "map_index": 2}, "saved_s": 150}
    expected = "\U0001f4cc pinned fedcba98 from nightly/manual__2026-01-02/train[2] \u00b7 saved 2.5 min"
    assert task_note(row) == expected


def test_a_node_that_ran_or_published_nothing_has_no_note():
    assert task_note({"kind": "ran", "execution_id": "x" * 16, "source": None, "saved_s": None}) is None
    assert task_note(None) is None


def test_a_run_note_counts_reused_and_pinned_among_its_nodes():
    rows = [
        {"kind": "reused", "saved_s": 3.5},
        {"kind": "pinned", "saved_s": 3.2},
        {"kind": "ran", "saved_s": None},
    ]
    assert run_note(rows, 4) == "2/4 reused, 6.7 s saved"
    assert run_note(rows[2:], 3) is None  # nothing reused: the Grid marks nothing


def test_only_an_authorless_note_of_our_shape_is_ours():
    mine = task_note({"kind": "reused", "execution_id": "0123456789", "source": SOURCE, "saved_s": 1.0})
    assert is_ours(mine, None)
    assert not is_ours(mine, "admin")  # a user edited it: theirs now
    assert not is_ours("reused by hand, see ticket 12", None)
    assert is_ours("3/3 reused, 6.7 s saved", None, run=True)
    assert not is_ours("3/3 reused, 6.7 s saved", "admin", run=True)
    assert not is_ours("Reuses preprocess from run x", None, run=True)


def test_replace_writes_on_no_note_rewrites_ours_and_never_a_users():
    assert replace(None, "\u267b reused a from b")
    assert not replace(None, None)
    assert replace(("\u267b reused old from b", None), "\u267b reused new from b")
    assert replace(("\u267b reused old from b", None), None)  # cleared, ran this time: stale, removed
    assert not replace(("my note", "admin"), "\u267b reused new from b")
    assert not replace(("\u267b reused old from b", "admin"), None)
    assert not replace(("Reuses train from run r", None), "1/3 reused, 2.0 s saved", run=True)


BASIC = Path(__file__).resolve().parent / "pipelines" / "basic"
NODES = ("prepare", "fit", "report")


def _notes(dag_id: str, run_id: str) -> tuple[str | None, dict[str, tuple[str | None, str | None]]]:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id).all()
        notes = {
            ti.task_id: (ti.task_instance_note.content, ti.task_instance_note.user_id)
            for ti in tis
            if ti.task_instance_note is not None
        }
        return run.note, notes


@pytest.mark.slow
def test_dag_test_notes_each_reused_node_and_the_run_and_keeps_a_users_note(reuse_env, docker_client):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from harness import copy_project, sync

    from airflow_valohai_reuse import build_dags
    from airflow_valohai_reuse.plugins.notes import write_notes

    project = copy_project(BASIC, reuse_env / "project")
    dag = build_dags(project / "valohai.yaml", dag_id_prefix="notes_")["notes_basic"]
    sync(dag)
    first = dag.test()
    second = dag.test()
    assert (str(first.state), str(second.state)) == ("success", "success")

    run_text, ti_notes = _notes(dag.dag_id, first.run_id)
    assert run_text is None and ti_notes == {}  # every node ran: nothing to mark
    run_text, ti_notes = _notes(dag.dag_id, second.run_id)
    assert set(ti_notes) == set(NODES)
    for task_id, (content, author) in ti_notes.items():
        assert content.startswith("\u267b reused "), content
        assert f"from {dag.dag_id}/{first.run_id}/{task_id} \u00b7 saved " in content
        assert author is None
    assert run_text is not None and run_text.startswith("3/3 reused, ") and run_text.endswith(" saved")

    # someone notes a task instance and the run: the listener, run again, leaves both as they are
    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag.dag_id, run_id=second.run_id).one()
        fit = next(ti for ti in run.get_task_instances(session=session) if ti.task_id == "fit")
        fit.task_instance_note.content, fit.task_instance_note.user_id = "checked by hand", "admin"
        run.dag_run_note.content, run.dag_run_note.user_id = "release candidate", "admin"
        session.flush()
        assert write_notes(run, session) == 0
    run_text, ti_notes = _notes(dag.dag_id, second.run_id)
    assert ti_notes["fit"] == ("checked by hand", "admin") and run_text == "release candidate"
    assert ti_notes["prepare"][0].startswith("\u267b reused ")
