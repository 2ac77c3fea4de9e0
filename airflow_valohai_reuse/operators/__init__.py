"""Airflow operators: the ReusableDockerOperator and its Docker-side helpers."""
