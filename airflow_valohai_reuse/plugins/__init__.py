"""The Airflow plugin: extra links and pages that show reuse."""
