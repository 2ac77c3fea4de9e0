"""Airflow triggers: waiting, without a worker slot, for an identical execution."""
