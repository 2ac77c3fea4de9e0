"""A PostgreSQL server of a test module's own, which the module may stop with SIGSTOP and resume:
never the shared server that other tests use."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from local_airflow import free_port
from sqlalchemy import create_engine, text

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*command: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True)


class PrivatePostgres:
    """A PostgreSQL server in a temporary folder owned by ``postgres``, on a port of its own."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vr-frozen-pg-"))
        shutil.chown(self.root, "postgres")
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}"
        self._stopped: list[int] = []

    def start(self) -> None:
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "log")
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", log, "-w", "-o", options, "start")

    def stop(self) -> None:
        self.thaw()
        with contextlib.suppress(subprocess.CalledProcessError):
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def new_database(self) -> str:
        name = f"vr_frozen_{uuid.uuid4().hex[:12]}"
        # bounded, so that a server left frozen fails the set-up instead of hanging it
        admin = create_engine(
            f"{self.url}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 10}
        )
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return f"{self.url}/{name}"

    def _pids(self) -> list[int]:
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return []  # not started, or stopped
        postmaster = int(pid_file.read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout
        return [postmaster, *map(int, children.split())]

    def freeze(self) -> None:
        """Stop the postmaster first, so that it forks no backend the list would miss."""
        self._stopped = self._pids()
        for pid in self._stopped:
            # a backend listed may have exited since: that of a connection just closed often has
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Every process stopped, and every one there now (a backend forked just before the stop)."""
        for pid in {*self._stopped, *self._pids()}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._stopped = []

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        try:
            self.freeze()
            yield
        finally:
            self.thaw()
