"""Adversarial runs: what a node reuses is what a fresh run would produce, and nothing that cannot be
published is ever recorded."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import copy_project, run

from airflow_valohai_reuse import build_dags

pytestmark = pytest.mark.slow

ADVERSARIAL = Path(__file__).resolve().parent / "pipelines" / "adversarial"


@pytest.fixture
def project(reuse_env):
    return copy_project(ADVERSARIAL, reuse_env / "project")


def _dag(project: Path, name: str):
    return build_dags(project / "valohai.yaml")[name]


def _text(uri: str) -> str:
    return Path(uri.removeprefix("file://")).read_text()


def _output(result, task: str, name: str) -> str:
    (uri,) = [o["uri"] for o in result.xcoms[task]["outputs"] if o["name"] == name]
    return _text(uri)


def _rows(reuse_env: Path, step: str) -> int:
    with sqlite3.connect(reuse_env / "cache.db") as db:
        return db.execute("select count(*) from vr_executions where step = ?", (step,)).fetchone()[0]


def when_running(docker_client, task_id: str, action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` once a container of ``task_id`` is running (within 60 s)."""

    def wait_then_act() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if docker_client.containers.list(filters={"label": f"io.valohai-reuse.task-id={task_id}"}):
                action()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=wait_then_act, daemon=True)
    thread.start()
    return thread


def _overwrite_in_place(path: Path, text: str) -> None:
    with open(path, "r+") as handle:
        handle.write(text)


def test_input_rewritten_during_the_run_never_reaches_the_container_nor_the_cache(
    project, reuse_env, docker_client
):
    data = project / "data.txt"
    dag = _dag(project, "live-input")
    writer = when_running(docker_client, "read", lambda: _overwrite_in_place(data, "content-BBBB\n"))
    first = run(dag, docker_client)
    writer.join()
    assert first.state == "success", first.task_states
    assert _output(first, "read", "seen.txt") == "content-AAAA\n"  # what was fingerprinted
    _overwrite_in_place(data, "content-AAAA\n")  # the original bytes are back
    second = run(dag, docker_client)
    assert second.xcoms["read"]["reused"] is True
    assert _output(second, "read", "seen.txt") == "content-AAAA\n"


def test_input_that_changes_between_fingerprint_and_run_stops_the_node(project, reuse_env, docker_client):
    first = run(_dag(project, "live-input"), docker_client)
    assert first.state == "success", first.task_states
    (project / "data.txt").write_text("content-CCCC\n")
    second = run(_dag(project, "live-input"), docker_client)
    assert second.xcoms["read"]["reused"] is False
    assert _output(second, "read", "seen.txt") == "content-CCCC\n"
    assert _rows(reuse_env, "read-slowly") == 2


def test_store_blob_written_while_the_container_reads_it_is_not_recorded(
    project, reuse_env, docker_client, capfd
):
    dag = _dag(project, "live-blob")

    def tamper() -> None:
        (blob,) = (reuse_env / "artifacts" / "sha256").glob("*/*")
        os.chmod(blob, 0o644)
        _overwrite_in_place(blob, "blob-BBBB\n")

    writer = when_running(docker_client, "consume", tamper)
    first = run(dag, docker_client)
    writer.join()
    assert first.state == "success", first.task_states
    out = capfd.readouterr()
    assert "input files were written while the container ran (blob/blob.txt)" in out.out + out.err
    assert _rows(reuse_env, "produce") == 1
    assert _rows(reuse_env, "consume") == 0


def _swap_parameter_declarations(project: Path) -> None:
    path = project / "valohai.yaml"
    text = path.read_text()
    first = '      - name: first\n        type: string\n        default: x\n        pass-as: "{v}"\n'
    second = '      - name: second\n        type: string\n        default: y\n        pass-as: "{v}"\n'
    assert first + second in text
    path.write_text(text.replace(first + second, second + first))


def test_parameter_declaration_order_that_changes_the_command_is_a_miss(project, docker_client, capfd):
    first = run(_dag(project, "positional"), docker_client)
    assert _output(first, "positional", "args.txt") == "x y\n"
    _swap_parameter_declarations(project)
    second = run(_dag(project, "positional"), docker_client)
    assert second.xcoms["positional"]["reused"] is False
    assert _output(second, "positional", "args.txt") == "y x\n"
    out = capfd.readouterr()
    assert "not reused: step parameter-order ['first', 'second'] → ['second', 'first']" in out.out + out.err


def test_a_description_does_not_break_reuse(project, docker_client):
    first = run(_dag(project, "positional"), docker_client)
    path = project / "valohai.yaml"
    path.write_text(
        path.read_text().replace("        default: x\n", "        default: x\n        description: d\n")
    )
    second = run(_dag(project, "positional"), docker_client)
    assert second.xcoms["positional"]["reused"] is True
    assert second.xcoms["positional"]["reused_from"] == first.xcoms["positional"]["execution_id"]


def test_losing_the_executable_bit_is_a_miss_that_fails_as_without_reuse(project, docker_client, capfd):
    first = run(_dag(project, "script"), docker_client)
    assert first.state == "success", first.task_states
    os.chmod(project / "run.sh", 0o644)
    second = run(_dag(project, "script"), docker_client)
    assert second.state == "failed"
    assert second.containers_started == 1
    out = capfd.readouterr()
    assert "not reused: code run.sh is no longer executable" in out.out + out.err
    assert "Permission denied" in out.out + out.err
    os.chmod(project / "run.sh", 0o755)
    third = run(_dag(project, "script"), docker_client)
    assert third.xcoms["script"]["reused_from"] == first.xcoms["script"]["execution_id"]


def test_output_name_that_is_not_utf8_is_refused_before_anything_is_recorded(
    project, reuse_env, docker_client, capfd
):
    for _ in range(2):  # the second run is no poisoned hit: it runs and says the same
        result = run(_dag(project, "odd-output"), docker_client)
        assert result.state == "failed"
        assert result.containers_started == 1
        out = capfd.readouterr()
        assert "output names that are not valid UTF-8: caf\\xe9.txt; rename them in the step" in (
            out.out + out.err
        )
        assert _rows(reuse_env, "odd-output") == 0
    kept = list((reuse_env / "work").glob("*/outputs/" + os.fsdecode(b"caf\xe9.txt")))
    assert len(kept) == 2  # the outputs stay for the user to rescue


def test_project_file_name_that_is_not_utf8_is_fingerprinted_and_staged(project, reuse_env, docker_client):
    odd = project / os.fsdecode(b"odd-caf\xe9.txt")
    odd.write_text("one\n")
    first = run(_dag(project, "repository"), docker_client)
    assert first.state == "success", first.task_states
    assert _output(first, "repository", "odd.txt") == "one\n"
    second = run(_dag(project, "repository"), docker_client)
    assert second.xcoms["repository"]["reused"] is True
    odd.write_text("two\n")
    third = run(_dag(project, "repository"), docker_client)
    assert third.xcoms["repository"]["reused"] is False
    assert _output(third, "repository", "odd.txt") == "two\n"


def test_secret_parameter_is_hashed_in_the_fingerprint_and_never_stored_or_logged(
    project, reuse_env, docker_client, capfd
):
    from airflow_valohai_reuse.cli import main

    first = run(_dag(project, "login"), docker_client)
    assert first.state == "success", first.task_states
    same = run(_dag(project, "login"), docker_client)
    assert same.xcoms["login"]["reused"] is True
    rotated = run(_dag(project, "login"), docker_client, {"password": "rotated-value"})
    assert rotated.xcoms["login"]["reused"] is False
    assert _output(rotated, "login", "digest.txt") != _output(first, "login", "digest.txt")
    main(["explain", first.xcoms["login"]["execution_id"]])
    out = capfd.readouterr()
    everything = out.out + out.err + repr([first.xcoms, same.xcoms, rotated.xcoms])
    for secret in ("s3cr3t-value", "rotated-value"):
        assert secret not in everything
        for path in reuse_env.glob("cache.db*"):
            assert secret.encode() not in path.read_bytes()
    assert "not reused: parameter password" in out.out + out.err
    assert first.xcoms["login"]["parameters"] == {"user": "alice"}


def _set_signing_key(project: Path, value: str) -> None:
    path = project / "valohai.yaml"
    text = path.read_text()
    path.write_text(text.replace("default: key-one", f"default: {value}"))


@pytest.mark.parametrize("opted_in", [False, True])
def test_secret_environment_variable_rotation_misses_only_where_the_step_opts_in(
    project, reuse_env, docker_client, capfd, opted_in
):
    if opted_in:
        (project / "valohai-reuse.yaml").write_text(
            "steps:\n  sign:\n    fingerprint-secrets: [SIGNING_SECRET]\n"
        )
    first = run(_dag(project, "sign"), docker_client)
    assert first.state == "success", first.task_states
    _set_signing_key(project, "key-number-two")
    second = run(_dag(project, "sign"), docker_client)
    assert second.xcoms["sign"]["reused"] is not opted_in
    out = capfd.readouterr()
    assert "key-one" not in out.out + out.err
    assert "key-number-two" not in out.out + out.err
    for path in reuse_env.glob("cache.db*"):
        assert b"key-one" not in path.read_bytes()
    if opted_in:
        assert _output(second, "sign", "signed.txt") == "signed with a key of 14 bytes\n"
        assert "environment secrets-sha256/SIGNING_SECRET" in out.out + out.err
