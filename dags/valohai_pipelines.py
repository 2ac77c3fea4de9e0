"""Drop-in DAG file: every pipeline of every valohai.yaml under the pipelines folder becomes a DAG.

The folder is ``[valohai_reuse] pipelines_folder`` (default: this file's folder). Broken files are
reported by valohai_pipelines_check.py, which keeps them from hiding the DAGs of good ones.
"""

from airflow_valohai_reuse.factory.dropin import register_pipelines

register_pipelines(globals(), default_folder=__file__.rsplit("/", 1)[0])
