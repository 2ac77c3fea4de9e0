"""The providers' private parts this package touches: each in one place, with the reason measured.

- ``DockerOperator._private_environment``: a node's secret variables are known only once it has
  resolved (its parameters and upstreams), after the operator was built; the constructor's
  ``private_environment`` is the operator's only door for variables it never logs or renders.
- ``S3Hook._get_caller``: the hook finds the caller it names in its user agent with
  ``inspect.stack()``, which reads the source of every frame: about 200 ms of a task's first client.
- ``boto3.session.Session._session``: the botocore session, given one data loader for the process
  (parsing botocore's S3 model again costs about 100 ms of CPU per client).

tests/test_internals.py fails when a provider release changes one of them. The Amazon provider and
boto3 are imported inside the functions: only an S3 store needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def add_private_environment(operator: Any, variables: Mapping[str, str]) -> None:
    """Give a DockerOperator's container ``variables`` as its private (never logged) environment."""
    operator._private_environment = {**getattr(operator, "_private_environment", {}), **variables}


def botocore_session(session: Any) -> Any:
    """The botocore session of a boto3 session (a botocore session is its own)."""
    import boto3

    return session._session if isinstance(session, boto3.session.Session) else session


def s3_hook_class(loader: Any) -> type:
    """The Amazon provider's S3Hook with its sessions given ``loader`` and its caller named."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    class SharedLoaderS3Hook(S3Hook):
        def _get_caller(self, target_function_name: str = "execute") -> str:
            return "airflow_valohai_reuse"

        def get_session(self, region_name: str | None = None, deferrable: bool = False) -> Any:
            session = super().get_session(region_name=region_name, deferrable=deferrable)
            botocore_session(session).register_component("data_loader", loader)
            return session

    return SharedLoaderS3Hook
