"""The triggerer's half of single flight: wait, without a worker slot, for an identical execution."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from sqlalchemy.exc import SQLAlchemyError

from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.lease import Leases
from airflow_valohai_reuse.contracts import WaitState
from airflow_valohai_reuse.errors import ConfigError, first_line
from airflow_valohai_reuse.settings import load_settings


def check(fingerprint: str, cache_url: str) -> dict[str, Any]:
    """One look at the cache: has the execution been recorded, or has its lease ended?"""
    try:
        cache = ExecutionCache(cache_url)
        entry = cache.lookup(fingerprint)
        if entry is not None:
            return {"state": WaitState.FINISHED, "execution": entry.id}
        if Leases(cache.engine, seconds=0).current(fingerprint) is None:
            return {"state": WaitState.FREE}
    except SQLAlchemyError as exc:
        return {"state": WaitState.ERROR, "error": first_line(exc)}
    return {"state": WaitState.RUNNING}


def _cache_url() -> str | dict[str, Any]:
    """The cache database's URL (its connection is looked up once per wait), or an error event."""
    try:
        return load_settings().sql_alchemy_conn
    except ConfigError as exc:
        return {"state": WaitState.ERROR, "error": str(exc)}


class ExecutionDoneTrigger(BaseTrigger):
    """Fires when the execution with ``fingerprint`` is recorded or its holder's lease ends."""

    def __init__(self, fingerprint: str, poll_seconds: float) -> None:
        super().__init__()
        self.fingerprint = fingerprint
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"fingerprint": self.fingerprint, "poll_seconds": self.poll_seconds},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        url = await asyncio.to_thread(_cache_url)
        if isinstance(url, dict):
            yield TriggerEvent({"fingerprint": self.fingerprint, **url})
            return
        while True:
            found = await asyncio.to_thread(check, self.fingerprint, url)
            if found["state"] is not WaitState.RUNNING:
                yield TriggerEvent({"fingerprint": self.fingerprint, **found})
                return
            await asyncio.sleep(self.poll_seconds)
