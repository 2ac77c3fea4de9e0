"""The execution cache as the plugin's pages and JSON API read it: one connection per request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

from airflow_valohai_reuse.cache.executions import engine_for
from airflow_valohai_reuse.settings import load_settings


class CacheUnavailable(Exception):
    """The cache database could not be read; the page says so instead of failing (app.py's handler)."""


@contextmanager
def cache_connection() -> Iterator[Connection]:
    try:
        engine = engine_for(load_settings().sql_alchemy_conn)
        conn = engine.connect()
    except Exception as exc:
        raise CacheUnavailable(str(exc)) from None
    with conn:
        yield conn
