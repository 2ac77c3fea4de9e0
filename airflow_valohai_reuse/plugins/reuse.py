"""The Airflow plugin: makes the package visible in ``airflow plugins`` and the UI's plugin list."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class ValohaiReusePlugin(AirflowPlugin):
    name = "valohai_reuse"
