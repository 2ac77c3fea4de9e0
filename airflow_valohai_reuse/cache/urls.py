"""Cache database URLs as people write them, made into URLs SQLAlchemy opens with an installed driver.

SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3 and knows no ``postgres://`` at all, while
Airflow connections, libpq and most documentation write both. Here either becomes psycopg2 (where
every wait for the database is bounded, see timeouts.py), or psycopg 3 where only that is installed.
A driver that is missing is a :class:`CacheDriverMissing`, a SQLAlchemy error like any other failure to
reach the database, so a task falls open with one warning that names the driver and the fix.
"""

from __future__ import annotations

import importlib.util

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import NoSuchModuleError

#: the package extra that installs both PostgreSQL drivers
POSTGRES_EXTRA = "airflow-valohai-reuse[postgres]"
_POSTGRES_SCHEMES = ("postgres", "postgresql")


class CacheDriverMissing(NoSuchModuleError):
    """The cache URL names a database whose Python driver is not installed here."""


def postgres_driver() -> str:
    """The driver a bare ``postgresql://`` URL gets: psycopg2 if installed, else psycopg 3."""
    for driver in ("psycopg2", "psycopg"):
        if importlib.util.find_spec(driver) is not None:
            return driver
    return "psycopg2"  # neither: opening it says which to install


def normalise(url: str) -> str:
    """``postgres://``, ``postgresql://`` and ``postgres+driver://`` as ``postgresql+driver://``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    backend, plus, driver = scheme.partition("+")
    if backend not in _POSTGRES_SCHEMES:
        return url
    return f"postgresql+{driver if plus else postgres_driver()}://{rest}"


def hidden(url: str | URL) -> str:
    """The URL as it may be logged: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: say so rather than echo what may hold a secret
        return "(an unparsable URL)"


def cache_url(url: str) -> URL:
    """The normalised URL, once its dialect and driver are known to load; raises SQLAlchemy errors."""
    parsed = make_url(normalise(url))
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError as exc:
        extra = f"pip install '{POSTGRES_EXTRA}'" if parsed.get_backend_name() == "postgresql" else None
        fix = extra or f"install the Python driver SQLAlchemy uses for {parsed.drivername}://"
        raise CacheDriverMissing(
            f"the cache database {hidden(parsed)} needs the driver {parsed.get_driver_name()!r}, which "
            f"is not installed ({exc}); {fix}, or write the URL with another installed driver"
        ) from None
    return parsed
