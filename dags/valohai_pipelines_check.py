"""Drop-in companion of valohai_pipelines.py: lists broken valohai.yaml files as an import error.

It defines no DAGs, so its import error hides none. (The word DAG here lets Airflow's safe-mode
scan pick this file up.)
"""

from airflow_valohai_reuse.factory.dropin import check_pipelines

check_pipelines(default_folder=__file__.rsplit("/", 1)[0])
