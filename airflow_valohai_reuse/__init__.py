"""Run valohai.yaml pipelines as Airflow DAGs whose Docker nodes reuse identical past executions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["ReusableDockerOperator", "__version__", "build_dags"]

if TYPE_CHECKING:
    from airflow_valohai_reuse.factory.factory import build_dags
    from airflow_valohai_reuse.operators.reusable_docker import ReusableDockerOperator


def __getattr__(name: str) -> Any:
    # Imported lazily: the provider metadata and the pure core must not pull in Airflow or Docker.
    if name == "build_dags":
        from airflow_valohai_reuse.factory.factory import build_dags

        return build_dags
    if name == "ReusableDockerOperator":
        from airflow_valohai_reuse.operators.reusable_docker import ReusableDockerOperator

        return ReusableDockerOperator
    raise AttributeError(name)
