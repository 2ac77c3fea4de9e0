"""valohai.yaml read into plain specs: steps, parameters, edges, task nodes, project settings (no Airflow)."""
