-- The execution cache has its own database; Airflow 3 keeps task code out of the metadata DB.
CREATE DATABASE valohai_reuse OWNER airflow;
