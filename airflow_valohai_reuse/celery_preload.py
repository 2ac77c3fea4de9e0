"""Airflow's Celery configuration, with what a node task imports loaded first.

Set ``[celery] celery_config_options = airflow_valohai_reuse.celery_preload.CELERY_CONFIG`` (the
compose stack does): the Celery worker imports this module when it starts, so every task process it
forks begins with the package, the Docker client, boto3, SQLAlchemy and the PostgreSQL driver
loaded, botocore's data parsed into the loader the package's S3 clients share (a client is made for
that and dropped), and valohai-yaml's schema validator built.

Two things a reused node needs are also made here once rather than in every task process:
- the execution cache's engine: the schema checked, the database's dialect read and a hit's queries
  compiled, with the one connection that took closed before the fork (a task process opens its own);
- the S3 client of the ``[valohai_reuse] aws_conn_id`` connection, where that connection is defined
  in the environment with its own access keys; a task takes it only while the connection it reads
  has the same identity (stores/s3.py). No request is made with it.
Neither failing stops the worker: a task then makes its own, as without this module.
"""

from __future__ import annotations

import contextlib
import logging

import airflow.timetables.simple  # noqa: F401  (what a DAG's first creation in a process imports)
import boto3  # noqa: F401
import docker  # noqa: F401
import sqlalchemy  # noqa: F401
from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401
from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

import airflow_valohai_reuse.cache.failopen
import airflow_valohai_reuse.factory.dropin
import airflow_valohai_reuse.factory.factory
import airflow_valohai_reuse.operators.approval  # the approval tasks' human-in-the-loop operator
import airflow_valohai_reuse.operators.reusable_docker  # noqa: F401
from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.statcache import BatchStatCache
from airflow_valohai_reuse.errors import first_line
from airflow_valohai_reuse.pipeline.pipelinefile import validator
from airflow_valohai_reuse.settings import load_settings
from airflow_valohai_reuse.stores.s3 import make_before_fork, warm

with contextlib.suppress(ImportError):
    import psycopg2  # noqa: F401

log = logging.getLogger(__name__)


def _open_cache(url: str) -> None:
    """The cache's engine for every task process: a hit's reads made once (on keys no row has), so that
    their SQL is compiled, and then the connection closed."""
    cache = ExecutionCache(url)
    try:
        cache.lookup("0" * 64)
        cache.published("", "", [""])
        BatchStatCache(cache, ["/.valohai-reuse-before-fork"])
    finally:
        cache.engine.dispose()


def _before_fork() -> None:
    try:
        settings = load_settings()
    except Exception as exc:  # each task reads them itself, and says there what is wrong
        log.warning("valohai-reuse: nothing made before forking: settings unreadable (%s)", first_line(exc))
        return
    try:
        _open_cache(settings.sql_alchemy_conn)
    except Exception as exc:  # each task opens the cache itself, and warns there if it is still down
        log.warning("valohai-reuse: the execution cache was not opened before forking (%s)", first_line(exc))
    try:
        make_before_fork(settings.aws_conn_id)
    except Exception as exc:  # each task makes its own client
        log.warning("valohai-reuse: no S3 client was made before forking (%s)", first_line(exc))


# S3's service model and endpoints, parsed into the loader every S3 client of the package shares
warm()
# valohai-yaml's schema validator, which each task process's parse of its DAG file would build
validator()
_before_fork()

CELERY_CONFIG = DEFAULT_CELERY_CONFIG
