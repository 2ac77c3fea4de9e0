"""A frozen cache database: a PostgreSQL server stopped by SIGSTOP costs a bounded time, not a hang.

A stopped server's kernel still accepts connections and acknowledges packets, so only a client-side
bound ends a wait for its reply. Each test freezes a private PostgreSQL server (never the shared one
other tests use) and thaws it in a ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from private_postgres import PrivatePostgres
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from workers import Worker, kill_group, wait_for_container

from airflow_valohai_reuse.cache.executions import ExecutionCache, _engines
from airflow_valohai_reuse.contracts import Execution

pytestmark = pytest.mark.slow

FROZEN = Path(__file__).resolve().parent / "pipelines" / "frozen"
TIMEOUT_S = 3
GUARD_S = 120  # a run still going this long after the freeze is hung: the test thaws and fails


@pytest.fixture(scope="module")
def private_pg():
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def cache_url(private_pg, monkeypatch):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__CACHE_TIMEOUT_SECONDS", str(TIMEOUT_S))
    url = private_pg.new_database()
    yield url
    engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


def _execution(fingerprint: str) -> Execution:
    return Execution(
        id=str(uuid.uuid4()),
        fingerprint=fingerprint,
        fingerprint_version=1,
        step="s",
        components={},
        outputs=[],
    )


def _timed(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    """How long ``call`` took and the error it raised; in a thread, so that a hang fails the test."""
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            call()
        except SQLAlchemyError as exc:
            errors.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10 * TIMEOUT_S)
    assert not thread.is_alive(), f"the call hung on the frozen database for {10 * TIMEOUT_S} s"
    return time.monotonic() - started, (errors or [None])[0]


def test_frozen_cache_fails_within_the_timeout_then_at_once_and_works_after_thawing(private_pg, cache_url):
    cache = ExecutionCache(cache_url)
    assert cache.lookup("a" * 64) is None  # a pooled connection now exists: the next call pings it
    with private_pg.frozen():
        lookup_s, lookup_error = _timed(lambda: cache.lookup("a" * 64))
        record_s, record_error = _timed(lambda: cache.record(_execution("a" * 64)))
    print(f"\nfrozen cache: lookup failed after {lookup_s:.2f} s, record after {record_s:.2f} s")
    assert lookup_error is not None, "a lookup on a frozen database returned"
    assert f"did not answer within {TIMEOUT_S} s" in str(lookup_error)
    assert lookup_s < 3 * TIMEOUT_S
    assert record_error is not None and "unresponsive since" in str(record_error)
    assert record_s < 1  # the breaker is open: no second wait for the same dead database

    thawed = time.monotonic()
    while time.monotonic() - thawed < 10 * TIMEOUT_S:
        with contextlib.suppress(SQLAlchemyError):
            cache.record(_execution("b" * 64))
            break
        time.sleep(0.2)
    assert cache.lookup("b" * 64) is not None
    print(f"frozen cache: working again {time.monotonic() - thawed:.1f} s after thawing")


def test_statement_on_a_frozen_cache_is_cut_at_the_timeout(private_pg, cache_url):
    cache = ExecutionCache(cache_url)
    with cache.engine.connect() as conn:
        conn.execute(text("select 1"))  # checked out and pinged: the next wait is the statement's own
        with private_pg.frozen():
            statement_s, error = _timed(lambda: conn.execute(text("select 2")))
    print(f"\nfrozen cache: a statement failed after {statement_s:.2f} s")
    assert error is not None and f"did not answer within {TIMEOUT_S} s" in str(error)
    assert TIMEOUT_S <= statement_s < 2 * TIMEOUT_S


def test_new_connection_to_a_frozen_cache_times_out(private_pg, cache_url):
    with private_pg.frozen():
        opened_s, error = _timed(lambda: ExecutionCache(cache_url))
    print(f"\nfrozen cache: opening it failed after {opened_s:.2f} s")
    assert error is not None and opened_s < 3 * TIMEOUT_S


def _opening(url: str) -> threading.Thread:
    """A thread that opens the cache at ``url`` (on a frozen server: it waits out the connect timeout)."""

    def attempt() -> None:
        with contextlib.suppress(SQLAlchemyError):
            ExecutionCache(url)

    return threading.Thread(target=attempt, daemon=True)


#: long enough for a thread to be waiting in its connect, well within the connect timeout
IN_CONNECT_S = TIMEOUT_S / 3


def test_a_frozen_cache_holds_up_no_other_cache_of_the_process(private_pg, cache_url, tmp_path):
    opening = _opening(cache_url)
    with private_pg.frozen():
        opening.start()
        time.sleep(IN_CONNECT_S)
        ExecutionCache(f"sqlite:///{tmp_path / 'other.db'}").lookup("a" * 64)
        other_done_first = opening.is_alive()
    opening.join(10 * TIMEOUT_S)
    assert other_done_first, "opening another cache waited for the frozen one"


def test_a_child_forked_while_a_cache_is_being_opened_opens_caches(private_pg, cache_url, tmp_path):
    """A lock held by another thread at the fork is never released in the child: it must not be used."""
    opening = _opening(cache_url)
    with private_pg.frozen():
        opening.start()
        time.sleep(IN_CONNECT_S)
        pid = os.fork()
        if pid == 0:  # the child: no thread is opening anything here
            code = 1
            try:
                ExecutionCache(f"sqlite:///{tmp_path / 'child.db'}").lookup("a" * 64)
                code = 0
            finally:
                os._exit(code)
    deadline = time.monotonic() + 10 * TIMEOUT_S
    while (waited := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    if waited == (0, 0):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    opening.join(10 * TIMEOUT_S)
    assert waited != (0, 0), f"the forked child hung opening a cache for {10 * TIMEOUT_S} s"
    assert os.waitstatus_to_exitcode(waited[1]) == 0


def test_cache_connections_carry_libpq_bounds(cache_url):
    cache = ExecutionCache(cache_url)
    with cache.engine.connect() as conn:
        assert conn.execute(text("show statement_timeout")).scalar() == f"{TIMEOUT_S * 800}ms"
        params = conn.connection.dbapi_connection.get_dsn_parameters()
    assert params["connect_timeout"] == str(TIMEOUT_S)
    assert (params["keepalives"], params["tcp_user_timeout"]) == ("1", str(TIMEOUT_S * 1000))


def test_other_psycopg2_connections_in_the_process_are_not_cut(private_pg, cache_url):
    """Airflow's own connections (a triggerer's metadata database) keep libpq's blocking waits."""
    import psycopg2

    ExecutionCache(cache_url).lookup("a" * 64)  # the watchdog exists and watches the cache's calls
    other = psycopg2.connect(f"host=127.0.0.1 port={private_pg.port} user=postgres dbname=postgres")
    answers: list[object] = []

    def query() -> None:
        with other.cursor() as cursor:
            cursor.execute("select 1")
            answers.append(cursor.fetchone())

    thread = threading.Thread(target=query, daemon=True)
    with private_pg.frozen():
        thread.start()
        thread.join(2 * TIMEOUT_S)
        assert thread.is_alive() and not answers
    thread.join(30)
    assert answers == [(1,)]
    other.close()


def _task(dag_id: str, task_id: str) -> dict[str, str]:
    return {"io.valohai-reuse.dag-id": dag_id, "io.valohai-reuse.task-id": task_id}


def test_run_whose_cache_freezes_under_a_running_node_finishes_with_a_warning(
    private_pg, tmp_path, docker_client
):
    prefix = f"fz{uuid.uuid4().hex[:6]}_"
    env = {
        "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": private_pg.new_database(),
        "AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE": (tmp_path / "artifacts").as_uri(),
        "AIRFLOW__VALOHAI_REUSE__DAG_ID_PREFIX": prefix,
        "AIRFLOW__VALOHAI_REUSE__CACHE_TIMEOUT_SECONDS": str(TIMEOUT_S),
        "AIRFLOW__VALOHAI_REUSE__LEASE_SECONDS": "3",  # a heartbeat every second while the node runs
    }
    worker = Worker.create(tmp_path, "worker", FROZEN, env)
    since = time.time()
    run = worker.start(f"{prefix}frozen")
    try:
        wait_for_container(docker_client, since, _task(f"{prefix}frozen", "hold"))
        frozen_at = time.monotonic()
        private_pg.freeze()
        try:
            code: int | None = run.wait(timeout=GUARD_S)
        except subprocess.TimeoutExpired:
            code = None
        after_freeze_s = time.monotonic() - frozen_at
    finally:
        private_pg.thaw()
        if run.process.poll() is None:
            kill_group(run)
    output = run.output()
    print(f"\nfrozen cache under a running node: the run ended {after_freeze_s:.1f} s after the freeze")
    assert code is not None, f"the run hung on the frozen cache for {GUARD_S} s:\n{output[-4000:]}"
    assert code == 0, output[-4000:]
    assert worker.task_states("hold") == ["success"] and worker.task_states("after") == ["success"]
    assert f"did not answer within {TIMEOUT_S} s" in output
    # the node's 4 s container, the next node, and at most two timeouts, with room for a slow machine
    assert after_freeze_s < 4 + 2 * TIMEOUT_S + 30
