"""Airflow's Celery configuration, with what a node task imports loaded first.

Set ``[celery] celery_config_options = airflow_valohai_reuse.celery_preload.CELERY_CONFIG`` (the
compose stack does): the Celery worker imports this module when it starts, so every task process it
forks begins with the package, the Docker client, boto3, SQLAlchemy and the PostgreSQL driver
loaded, botocore's data parsed into the loader the package's S3 clients share (a client is made for
that and dropped), and valohai-yaml's schema validator built. No request is made and no connection is
opened before the fork. A reused node's task instance alone on a worker of a 2-CPU machine takes
0.30 s (``python -m bench --only cluster`` shows the effect under load).
"""

from __future__ import annotations

import contextlib

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
from airflow_valohai_reuse.pipeline.pipelinefile import validator
from airflow_valohai_reuse.stores.s3 import warm

with contextlib.suppress(ImportError):
    import psycopg2  # noqa: F401

# S3's service model and endpoints, parsed into the loader every S3 client of the package shares
warm()
# valohai-yaml's schema validator, which each task process's parse of its DAG file would build
validator()

CELERY_CONFIG = DEFAULT_CELERY_CONFIG
