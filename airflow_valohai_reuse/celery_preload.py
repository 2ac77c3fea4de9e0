"""Airflow's Celery configuration, with what a node task imports loaded first.

Set ``[celery] celery_config_options = airflow_valohai_reuse.celery_preload.CELERY_CONFIG`` (the
compose stack does): the Celery worker imports this module when it starts, so every task process it
forks begins with the package, the Docker client, boto3 with S3's service model, SQLAlchemy and the
PostgreSQL driver already loaded. A reused node's task instance then took 0.78 s instead of 0.95 s
on a 2-CPU machine (``python -m bench --only cluster`` shows the effect under load). Only modules
are loaded here: no connection or client is made before the fork.
"""

from __future__ import annotations

import contextlib

import boto3  # noqa: F401
import botocore.session
import docker  # noqa: F401
import sqlalchemy  # noqa: F401
from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401
from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

import airflow_valohai_reuse.cache.failopen
import airflow_valohai_reuse.factory.dropin
import airflow_valohai_reuse.operators.reusable_docker  # noqa: F401

with contextlib.suppress(ImportError):
    import psycopg2  # noqa: F401

# the S3 client's service model, which each new client otherwise reads and parses from disk
botocore.session.get_session().get_component("data_loader").load_service_model("s3", "service-2")

CELERY_CONFIG = DEFAULT_CELERY_CONFIG
