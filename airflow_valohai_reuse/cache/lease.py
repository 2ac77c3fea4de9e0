"""Single flight: one worker runs a fingerprint at a time; identical nodes elsewhere wait for it.

A lease is a row of ``vr_leases`` keyed by fingerprint. Its holder renews it from a heartbeat
thread while the container runs, records the execution, then deletes the row. A node that finds
the row held waits; once the holder's execution is recorded it reuses it, and if the row outlives
its ``expires_at`` (the holder's worker died) the next one to look takes the lease over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from airflow_valohai_reuse.cache.schema import leases
from airflow_valohai_reuse.contracts import LeaseOwner, TaskKey

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; every one stored here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Held:
    """Someone else's live lease: who holds it and until when, unless renewed."""

    fingerprint: str
    holder: str
    owner: LeaseOwner
    acquired_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        return f"{self.owner.describe()}, since {self.acquired_at:%H:%M:%S}Z"


def owner_info(key: TaskKey, hostname: str | None = None) -> LeaseOwner:
    """This process as the holder of a lease for task instance ``key``. ``hostname``: the name
    Airflow gives the worker (``[core] hostname_callable``), as its UI shows it; the machine's own
    name otherwise."""
    return LeaseOwner.of(key, hostname or socket.gethostname(), os.getpid())


class Leases:
    """Acquire, renew, release and read leases in the cache database."""

    def __init__(self, engine: Engine, seconds: float) -> None:
        self.engine = engine
        self.seconds = seconds

    def current(self, fingerprint: str) -> Held | None:
        """The lease on ``fingerprint`` if one is live (held and not expired)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(leases).where(leases.c.fingerprint == fingerprint)).first()
        if row is None or _aware(row.expires_at) <= _now():
            return None
        return _held(row)

    def acquire(self, fingerprint: str, holder: str, owner: LeaseOwner) -> tuple[bool, Held | None]:
        """Try to take the lease: ``(True, None)``, ``(True, expired)`` on a takeover, ``(False, live)``."""
        for _ in range(5):
            now = _now()
            values = {
                "holder": holder,
                "owner": json.dumps(owner.as_dict(), sort_keys=True),
                "acquired_at": now,
                "expires_at": now + timedelta(seconds=self.seconds),
            }
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(leases).values(fingerprint=fingerprint, **values))
                return True, None
            except IntegrityError:
                pass
            with self.engine.begin() as conn:
                row = conn.execute(select(leases).where(leases.c.fingerprint == fingerprint)).first()
                if row is None:
                    continue  # released meanwhile: try the insert again
                if _aware(row.expires_at) > now:
                    return False, _held(row)
                taken = conn.execute(
                    update(leases)
                    .where(
                        leases.c.fingerprint == fingerprint,
                        leases.c.holder == row.holder,
                        leases.c.expires_at < now,
                    )
                    .values(**values)
                ).rowcount
                if taken == 1:
                    return True, _held(row)
        raise SQLAlchemyError(f"lease on {fingerprint[:12]} kept changing hands; giving up")

    def renew(self, fingerprint: str, holder: str) -> bool:
        """Push the expiry forward; False when the lease is no longer ours."""
        query = (
            update(leases)
            .where(leases.c.fingerprint == fingerprint, leases.c.holder == holder)
            .values(expires_at=_now() + timedelta(seconds=self.seconds))
        )
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1

    def purge(self, expired_for_s: float) -> int:
        """Delete leases of workers that died and that nobody took over; returns how many."""
        cutoff = _now() - timedelta(seconds=expired_for_s)
        with self.engine.begin() as conn:
            return conn.execute(delete(leases).where(leases.c.expires_at < cutoff)).rowcount

    def release(self, fingerprint: str, holder: str) -> None:
        query = delete(leases).where(leases.c.fingerprint == fingerprint, leases.c.holder == holder)
        with self.engine.begin() as conn:
            conn.execute(query)


def _held(row: Any) -> Held:
    return Held(
        fingerprint=row.fingerprint,
        holder=row.holder,
        owner=LeaseOwner.from_dict(json.loads(row.owner)),
        acquired_at=_aware(row.acquired_at),
        expires_at=_aware(row.expires_at),
    )


#: how long leaving a flight waits for a renewal in progress
_HEARTBEAT_JOIN_S = 1.0


class Flight:
    """The holder's side: a heartbeat thread while inside ``with``, and the release on the way out
    (``leases_`` None: no cache database to hold leases in, so the flight guards nothing)."""

    def __init__(
        self,
        leases_: Leases | None,
        fingerprint: str,
        logger: logging.Logger = log,
        owner: LeaseOwner | None = None,
    ) -> None:
        self.leases = leases_
        self.fingerprint = fingerprint
        #: who holds the lease once claimed, for the waiting side's log
        self.owner = owner or LeaseOwner()
        self.holder = str(uuid.uuid4())
        self.log = logger
        #: the expired lease this flight took over: its holder's container may still be running
        self.taken_over: Held | None = None
        #: the lease is ours: the heartbeat renews it inside ``with``, and leaving releases it
        self.claimed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lease_holder(self) -> str:
        """The holder that labels this flight's container; empty when no lease guards it."""
        return self.holder if self.claimed else ""

    def claim(self) -> Held | None:
        """Take the lease, or return the live lease someone else holds. Database errors: run unguarded."""
        if self.leases is None:
            return None
        try:
            ours, previous = self.leases.acquire(self.fingerprint, self.holder, self.owner)
        except SQLAlchemyError as exc:
            self.log.warning("could not take the single-flight lease (%s); running without it", exc)
            self.leases = None
            return None
        if not ours:
            return previous
        self.claimed = True
        if previous is not None:
            self.taken_over = previous
            late = (_now() - previous.expires_at).total_seconds()
            self.log.warning(
                "taking over the lease of %s: not renewed for %.1f s past its expiry (worker gone?)",
                previous.describe(),
                late,
            )
        return None

    def __enter__(self) -> Flight:
        if self.claimed and self.leases is not None:
            self._thread = threading.Thread(target=self._beat, name="valohai-reuse-lease", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        assert self.leases is not None
        failing = False
        while not self._stop.wait(self.leases.seconds / 3):
            try:
                renewed = self.leases.renew(self.fingerprint, self.holder)
            except SQLAlchemyError as exc:
                if not failing:  # one warning per outage, not one per beat while it lasts
                    self.log.warning("could not renew the lease on %s (%s)", self.fingerprint[:12], exc)
                failing = True
                continue
            if not renewed:
                if not self._stop.is_set():  # after the stop, release() may simply have come first
                    self.log.warning("lost the lease on %s to another worker", self.fingerprint[:12])
                return
            failing = False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            # a renewal in progress takes milliseconds; on an unresponsive database it would hold the
            # task for the cache timeout, for a lease release() deletes (or lets expire) anyway
            self._thread.join(_HEARTBEAT_JOIN_S)
        if self.claimed and self.leases is not None:
            self.claimed = False
            try:
                self.leases.release(self.fingerprint, self.holder)
            except SQLAlchemyError as err:
                self.log.warning("could not release the lease (%s); it expires by itself", err)
