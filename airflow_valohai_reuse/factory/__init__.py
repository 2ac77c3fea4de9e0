"""Where valohai.yaml meets Airflow: DAGs from pipeline specs, and DAG-folder discovery."""
