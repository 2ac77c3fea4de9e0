"""The names the parts agree on: XCom keys, task ids, container labels, where the app is mounted."""

from __future__ import annotations

#: the XCom key every node task pushes its :class:`Published` result under
XCOM_KEY = "valohai_execution"
#: the XCom key a node action that stops the pipeline pushes under (node actions, runcontrol)
STOP_KEY = "valohai_stop"
#: the task id of the task that decides a pipeline run's state where on-error rules need one
STATUS_TASK = "valohai_pipeline"
#: the class name of the node operator, as Airflow's metadata database records task instances' operator
OPERATOR_NAME = "ReusableDockerOperator"
#: the Docker daemon where neither ``[valohai_reuse] docker_url`` nor DOCKER_HOST names one
DEFAULT_DOCKER_URL = "unix://var/run/docker.sock"

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
#: all of them, in the order a container's labels are built from (dag id, run id, task id, execution id,
#: fingerprint, lease holder); the first three name the task instance a container runs for
NODE_LABELS = (
    DAG_ID_LABEL,
    RUN_ID_LABEL,
    TASK_ID_LABEL,
    EXECUTION_ID_LABEL,
    FINGERPRINT_LABEL,
    LEASE_HOLDER_LABEL,
)


def map_index_of(value: int | None) -> int:
    """A task instance's map index as the ledger keys it: -1 for an unmapped task (None in places)."""
    return -1 if value is None else value
