"""The ``[valohai_reuse]`` settings: read once per configuring environment, wrong values named by
their option, the cache's connection looked up only when the cache is opened."""

from __future__ import annotations

import pytest

from airflow_valohai_reuse.errors import ConfigError
from airflow_valohai_reuse.fingerprint.scope import ScopeMode
from airflow_valohai_reuse.settings import load_settings


def test_the_settings_are_read_once_for_one_environment(monkeypatch):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__DAG_ID_PREFIX", "prod_")
    first = load_settings()
    assert load_settings() is first and first.dag_id_prefix == "prod_"
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__DAG_ID_PREFIX", "stg_")
    assert load_settings().dag_id_prefix == "stg_"


def test_a_mistyped_code_scope_is_an_error_of_the_option(monkeypatch):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__CODE_SCOPE", "repo")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == "[valohai_reuse] code_scope must be one of auto, repository, got 'repo'"
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__CODE_SCOPE", "repository")
    assert load_settings().code_scope is ScopeMode.REPOSITORY


def test_the_cache_connection_is_looked_up_only_when_the_cache_url_is_asked(monkeypatch):
    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__CACHE_CONN_ID", "no_such_connection")
    settings = load_settings()  # a DAG-file parse reads these and never the cache's URL
    assert settings.cache_conn_id == "no_such_connection"
    with pytest.raises(ConfigError, match=r"^\[valohai_reuse\] cache_conn_id 'no_such_connection'"):
        _ = settings.sql_alchemy_conn
    monkeypatch.setenv("AIRFLOW_CONN_NO_SUCH_CONNECTION", "postgres://u:p@127.0.0.1:5432/test")
    assert load_settings().sql_alchemy_conn == "postgresql+psycopg2://u:p@127.0.0.1:5432/test"
