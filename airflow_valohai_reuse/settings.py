"""The ``[valohai_reuse]`` settings, read once per process into a frozen object.

:func:`load_settings` reads the options once and hands the same object to every caller while the
environment that configures them (``AIRFLOW__VALOHAI_REUSE__*``, ``AIRFLOW_CONN_*``, AIRFLOW_HOME,
AIRFLOW_CONFIG) stays as it was. A wrong value is a :class:`ConfigError` naming the option. The
cache's database URL is resolved (through an Airflow connection, where ``cache_conn_id`` names one)
only when something opens the cache, so a DAG-file parse never looks a connection up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.errors import ConfigError
from airflow_valohai_reuse.fingerprint.scope import ScopeMode
from airflow_valohai_reuse.get_provider_info import OPTIONS

SECTION = "valohai_reuse"


@dataclass(frozen=True)
class Settings:
    #: ``cache_conn_id`` and ``sql_alchemy_conn`` as configured: :attr:`sql_alchemy_conn` resolves them
    cache_conn_id: str
    cache_url_option: str
    artifact_store: str
    work_dir: Path
    docker_url: str | None
    pipelines_folder: str
    dag_id_prefix: str
    schedules: dict[str, str]
    secret_env_patterns: tuple[str, ...]
    keep_work_dirs: bool
    code_scope: ScopeMode
    aws_conn_id: str
    lease_seconds: float = 60.0
    #: one DAG per step of every valohai.yaml, besides its pipelines (valohai-reuse.yaml's step-dags wins)
    step_dags: bool = False
    lease_poll_seconds: float = 5.0
    cache_timeout_seconds: float = 10.0
    #: plain node tasks start in the triggerer, which ends a reused one there (no worker)
    decide_in_triggerer: bool = False
    airflow_home: Path = Path("~/airflow")

    @cached_property
    def sql_alchemy_conn(self) -> str:
        """The cache database's SQLAlchemy URL, resolved on first use (``cache_conn_id`` first)."""
        if self.cache_conn_id:
            return _connection_url(self.cache_conn_id)
        return self.cache_url_option or f"sqlite:///{self.airflow_home / 'valohai-reuse.db'}"


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def _raw(key: str) -> str:
    """The option as Airflow's config gives it: ``AIRFLOW__VALOHAI_REUSE__*``, then airflow.cfg, then
    the default declared in the provider metadata."""
    try:
        from airflow.configuration import conf
    except ImportError:  # pure use without Airflow: the environment and the declared default
        return os.environ.get(f"AIRFLOW__{SECTION.upper()}__{key.upper()}", str(OPTIONS[key]["default"]))
    return str(conf.get(SECTION, key, fallback=OPTIONS[key]["default"]))


def _schedules(text: str) -> dict[str, str]:
    try:
        value: Any = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"[{SECTION}] schedules is not JSON: {exc}; value {text!r}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"[{SECTION}] schedules must be a JSON object of DAG id to schedule, got {text!r}")
    return value


def _seconds(key: str) -> float:
    text = _raw(key).strip() or str(OPTIONS[key]["default"])
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"[{SECTION}] {key} must be a positive number of seconds, got {text!r}")
    return value


def price_per_hour() -> dict[str, float]:
    """Environment slug → price of an hour (``*``: any other slug); read alone, by the UI only, so that a
    mistyped price never stops a task."""
    text = _raw("price_per_hour").strip()
    try:
        value: Any = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"[{SECTION}] price_per_hour is not JSON: {exc}; value {text!r}") from None
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value.values()
    ):
        raise ConfigError(
            f"[{SECTION}] price_per_hour must be a JSON object of environment slug to a price per hour "
            f'(a number, "*" for any other slug), got {text!r}'
        )
    return {str(k): float(v) for k, v in value.items()}


def cache_timeout_seconds() -> float:
    """The bound on each wait for the cache database, read alone where the cache's engine is made."""
    return _seconds("cache_timeout_seconds")


_DRIVERS = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2", "mysql": "mysql"}


def _connection_url(conn_id: str) -> str:
    """A SQLAlchemy URL from an Airflow connection (``postgres://`` becomes ``postgresql+psycopg2://``)."""
    from airflow.sdk import BaseHook

    try:
        uri = BaseHook.get_connection(conn_id).get_uri()
    except Exception as exc:
        raise ConfigError(f"[{SECTION}] cache_conn_id {conn_id!r}: {exc}") from None
    scheme, rest = uri.split("://", 1)
    return f"{_DRIVERS.get(scheme, scheme)}://{rest}"


_ENVIRONMENT = (f"AIRFLOW__{SECTION.upper()}__", "AIRFLOW_CONN_", "AIRFLOW_HOME", "AIRFLOW_CONFIG")
_loaded: dict[tuple[tuple[str, str], ...], Settings] = {}


def load_settings() -> Settings:
    """The settings, read once for the environment that configures them (see the module's words)."""
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENVIRONMENT)))
    found = _loaded.get(key)
    if found is None:
        if len(_loaded) > 16:  # a process whose environment keeps changing (a test session)
            _loaded.clear()
        found = _loaded[key] = _read_settings()
    return found


def _code_scope() -> ScopeMode:
    text = _raw("code_scope").strip() or ScopeMode.AUTO.value
    try:
        return ScopeMode(text)
    except ValueError:
        choices = ", ".join(m.value for m in ScopeMode)
        raise ConfigError(f"[{SECTION}] code_scope must be one of {choices}, got {text!r}") from None


def _read_settings() -> Settings:
    home = _airflow_home()
    return Settings(
        cache_conn_id=_raw("cache_conn_id").strip(),
        cache_url_option=_raw("sql_alchemy_conn"),
        artifact_store=_raw("artifact_store") or (home / "valohai-artifacts").as_uri(),
        work_dir=Path(_raw("work_dir") or home / "valohai-work"),
        docker_url=_raw("docker_url") or None,
        pipelines_folder=_raw("pipelines_folder"),
        dag_id_prefix=_raw("dag_id_prefix"),
        schedules=_schedules(_raw("schedules")),
        secret_env_patterns=tuple(p.strip() for p in _raw("secret_env_patterns").split(",") if p.strip()),
        keep_work_dirs=_raw("keep_work_dirs").strip().lower() in ("1", "true", "yes"),
        code_scope=_code_scope(),
        aws_conn_id=_raw("aws_conn_id").strip() or "aws_default",
        lease_seconds=_seconds("lease_seconds"),
        step_dags=_raw("step_dags").strip().lower() in ("1", "true", "yes"),
        lease_poll_seconds=_seconds("lease_poll_seconds"),
        cache_timeout_seconds=cache_timeout_seconds(),
        decide_in_triggerer=_raw("decide_in_triggerer").strip().lower() in ("1", "true", "yes"),
        airflow_home=home,
    )
