"""What crosses a layer, defined once: the names the parts agree on. Importable without Airflow.

The records that travel between the parts (an output, an execution, a published result) are in
:mod:`~airflow_valohai_reuse.records`, beside these names and just as free of Airflow.
"""

from __future__ import annotations

#: the XCom key every node task pushes its published result under
XCOM_KEY = "valohai_execution"
#: the XCom key a node action that stops the pipeline pushes under (node actions, runcontrol)
STOP_KEY = "valohai_stop"
#: the task id of the task that decides a pipeline run's state where on-error rules need one
STATUS_TASK = "valohai_pipeline"
#: the class name of the node operator, as Airflow's metadata database records task instances' operator
OPERATOR_NAME = "ReusableDockerOperator"

#: where the plugin's FastAPI app is mounted, and the UI route of its page in the navigation
APP_PREFIX = "/valohai-reuse"
NAV_ROUTE = "execution-reuse"

#: the labels every node container carries: what gc and a lease takeover look for
LABEL = "io.valohai-reuse"
DAG_ID_LABEL = f"{LABEL}.dag-id"
RUN_ID_LABEL = f"{LABEL}.run-id"
TASK_ID_LABEL = f"{LABEL}.task-id"
EXECUTION_ID_LABEL = f"{LABEL}.execution-id"
FINGERPRINT_LABEL = f"{LABEL}.fingerprint"
LEASE_HOLDER_LABEL = f"{LABEL}.lease-holder"
