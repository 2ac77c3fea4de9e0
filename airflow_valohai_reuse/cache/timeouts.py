"""Bounds on every wait for the cache database, so that an unresponsive one costs seconds, not a hang.

A PostgreSQL server that is stopped (SIGSTOP, a frozen VM, storage that no longer answers) still has
its kernel accept connections and acknowledge packets, so neither TCP keepalives nor the server's
``statement_timeout`` end a client's wait for the reply. With psycopg2, therefore:

- connecting is bounded by libpq's ``connect_timeout``;
- every call on a cache connection (execute, commit, rollback, the pool's pre-ping) is watched: once
  it has waited ``timeout_s``, a watchdog thread shuts the connection's socket down, which ends
  libpq's wait at once with a lost connection that SQLAlchemy drops from its pool;
- such a timeout opens a breaker: connecting to that database then fails at once for a cool-down, so
  that a task pays the timeout once rather than on each later cache call (lease, record, release).

Keepalives, ``tcp_user_timeout`` and a ``statement_timeout`` still go on the connection: they end a
wait on a dead network path or a stuck statement, often before the watchdog has to.

Only connections of the cache's engines are watched; any other psycopg2 connection in the process
(Airflow's metadata database in a triggerer) is left alone. psycopg2's wait callback could bound
calls too, but it is process-wide: it would put every psycopg2 connection of the process in
non-blocking mode and forbid COPY in all of them (the lookup benchmark fills its table with COPY).

psycopg (3) and MySQL get the timeouts their drivers offer; SQLite gets its busy timeout.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext

from airflow_valohai_reuse.cache.urls import cache_url

#: how many timeouts a breaker stays open for: long enough to cover a task's next cache calls
COOLDOWN_TIMEOUTS = 3


class Breaker:
    """Open for a cool-down once a database did not answer; connecting to it is then refused."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.open_until = 0.0
        self.since: datetime | None = None
        self._lock = threading.Lock()

    def trip(self) -> None:
        with self._lock:
            self.since = self.since or datetime.now(UTC)
            self.open_until = time.monotonic() + COOLDOWN_TIMEOUTS * self.timeout_s

    def answered(self) -> None:
        with self._lock:
            self.since = None

    def refusal(self) -> str | None:
        """Why not to try connecting now; None once the cool-down is over."""
        with self._lock:
            left = self.open_until - time.monotonic()
            if left <= 0 or self.since is None:
                return None
            return (
                f"cache database unresponsive since {self.since:%H:%M:%S}Z (it did not answer within "
                f"{self.timeout_s:g} s); not trying again for {left:.0f} s"
            )


_breakers: dict[str, Breaker] = {}


def breaker_for(url: str, timeout_s: float) -> Breaker:
    """One breaker per URL and process: an engine made again for the URL finds it still open."""
    breaker = _breakers.get(url)
    if breaker is None or breaker.timeout_s != timeout_s:
        breaker = _breakers[url] = Breaker(timeout_s)
    return breaker


@dataclass(eq=False)
class _Alarm:
    fd: int
    deadline: float
    breaker: Breaker
    fired: bool = False


class _Watchdog:
    """One thread that shuts down the socket of each watched call still waiting at its deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._alarms: set[_Alarm] = set()
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf

    def arm(self, fd: int, seconds: float, breaker: Breaker) -> _Alarm:
        alarm = _Alarm(fd, time.monotonic() + seconds, breaker)
        with self._cond:
            self._alarms.add(alarm)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="valohai-reuse-db-watch", daemon=True)
                self._thread.start()
            elif alarm.deadline < self._wakes_at:  # otherwise it wakes in time by itself
                self._cond.notify()
        return alarm

    def disarm(self, alarm: _Alarm) -> None:
        with self._cond:
            self._alarms.discard(alarm)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for alarm in [a for a in self._alarms if a.deadline <= now]:
                    self._fire(alarm)
                self._wakes_at = min((a.deadline for a in self._alarms), default=math.inf)
                self._cond.wait(None if self._wakes_at == math.inf else self._wakes_at - now)

    def _fire(self, alarm: _Alarm) -> None:
        """Under the lock, so the call cannot finish and its connection close in between."""
        self._alarms.discard(alarm)
        alarm.fired = True
        alarm.breaker.trip()
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(alarm.fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)


_watchdog = _Watchdog()


def _new_watchdog() -> None:
    global _watchdog
    _watchdog = _Watchdog()


# a forked child has no watchdog thread, and its lock may have been held at the fork
os.register_at_fork(after_in_child=_new_watchdog)


@functools.cache
def _unresponsive_error() -> type[Exception]:
    """psycopg2's own OperationalError, so that SQLAlchemy wraps it as ``sqlalchemy.exc.OperationalError``."""
    import psycopg2

    class CacheUnresponsive(psycopg2.OperationalError):
        """The cache database did not answer in time, or did not a moment ago."""

    return CacheUnresponsive


@contextlib.contextmanager
def _watched(conn: Any, timeout_s: float, breaker: Breaker) -> Iterator[None]:
    if conn.closed:
        yield  # psycopg2 raises its own error at once
        return
    alarm = _watchdog.arm(conn.fileno(), timeout_s, breaker)
    try:
        yield
    except Exception as exc:
        if alarm.fired:
            raise _unresponsive_error()(f"cache database did not answer within {timeout_s:g} s") from exc
        raise
    finally:
        _watchdog.disarm(alarm)


def _watched_connection_class(timeout_s: float, breaker: Breaker) -> type:
    """A psycopg2 connection class whose every blocking call is watched (SQLAlchemy makes no other)."""
    import psycopg2.extensions

    class WatchedCursor(psycopg2.extensions.cursor):
        def execute(self, query: Any, vars: Any = None) -> Any:
            with _watched(self.connection, timeout_s, breaker):
                return super().execute(query, vars)

        def executemany(self, query: Any, vars_list: Any) -> Any:
            with _watched(self.connection, timeout_s, breaker):
                return super().executemany(query, vars_list)

    class WatchedConnection(psycopg2.extensions.connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.cursor_factory = WatchedCursor

        def commit(self) -> None:
            with _watched(self, timeout_s, breaker):
                super().commit()

        def rollback(self) -> None:
            with _watched(self, timeout_s, breaker):
                super().rollback()

    return WatchedConnection


def _libpq_args(url: URL, driver: str, timeout_s: float) -> dict[str, Any]:
    """libpq's own bounds; a parameter given in the URL wins over ours."""
    seconds = max(2, math.ceil(timeout_s))  # libpq counts whole seconds, 2 at least
    args: dict[str, Any] = {
        "connect_timeout": seconds,
        "keepalives": 1,
        "keepalives_idle": seconds,
        "keepalives_interval": max(1, seconds // 3),
        "keepalives_count": 3,
    }
    if _libpq_version(driver) >= 120000:
        args["tcp_user_timeout"] = int(timeout_s * 1000)
    args = {key: value for key, value in args.items() if key not in url.query}
    # a little under the client's bound, so that a live but slow server cancels the statement itself
    # and keeps the connection; the URL's own options come after ours and win
    options = f"-c statement_timeout={max(1, int(timeout_s * 800))}"
    args["options"] = f"{options} {url.query['options']}" if "options" in url.query else options
    return args


def _libpq_version(driver: str) -> int:
    if driver == "psycopg2":
        import psycopg2.extensions

        return psycopg2.extensions.libpq_version()
    import psycopg

    return psycopg.pq.version()


def _connect_args(url: URL, timeout_s: float) -> dict[str, Any]:
    driver = url.get_driver_name()
    if url.get_backend_name() == "sqlite":
        return {"timeout": timeout_s}  # how long to wait for another writer's lock
    if driver in ("psycopg2", "psycopg"):
        return _libpq_args(url, driver, timeout_s)
    if driver in ("mysqldb", "pymysql"):
        seconds = max(1, math.ceil(timeout_s))
        return {"connect_timeout": seconds, "read_timeout": seconds, "write_timeout": seconds}
    return {}  # another driver: its defaults, and no bound here


def bounded_engine(url: str, timeout_s: float) -> Engine:
    """An engine for the cache database whose every wait for it ends within about ``timeout_s``.

    ``postgres://`` and a bare ``postgresql://`` get an installed driver (urls.py); a missing driver
    raises :class:`~airflow_valohai_reuse.cache.urls.CacheDriverMissing`.
    """
    parsed = cache_url(url)
    connect_args = _connect_args(parsed, timeout_s)
    if parsed.get_backend_name() == "sqlite":
        return create_engine(parsed, connect_args=connect_args)
    if parsed.get_driver_name() != "psycopg2":
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    breaker = breaker_for(url, timeout_s)
    connect_args["connection_factory"] = _watched_connection_class(timeout_s, breaker)
    # the pre-ping is watched like any call: after a restart it finds a dead connection at once
    engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    event.listen(engine, "do_connect", functools.partial(_connect, breaker))
    event.listen(engine, "handle_error", _lost)
    return engine


def _connect(breaker: Breaker, dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Connect unless the breaker is open; a connect timeout opens it."""
    refusal = breaker.refusal()
    if refusal is not None:
        raise _unresponsive_error()(refusal)
    try:
        conn = dialect.connect(*cargs, **cparams)
    except dialect.loaded_dbapi.OperationalError as exc:
        if "timeout expired" not in str(exc):  # libpq's words for connect_timeout
            raise
        breaker.trip()
        message = f"cache database did not answer within {breaker.timeout_s:g} s (connecting)"
        raise _unresponsive_error()(message) from exc
    breaker.answered()
    return conn


def _lost(context: ExceptionContext) -> None:
    """A watched call that timed out has lost its connection: SQLAlchemy must not pool it again."""
    if isinstance(context.original_exception, _unresponsive_error()):
        context.is_disconnect = True
