"""Provider metadata: the ``[valohai_reuse]`` config section and the plugin, declared once."""

from __future__ import annotations

from typing import Any

OPTIONS: dict[str, dict[str, Any]] = {
    "sql_alchemy_conn": {
        "description": "SQLAlchemy URL of the execution cache database (its own database, never "
        "Airflow's metadata DB). Empty: a SQLite file valohai-reuse.db under $AIRFLOW_HOME.",
        "version_added": "0.1.0",
        "type": "string",
        "example": "postgresql+psycopg2://user:pass@db/valohai_reuse",
        "default": "",
    },
    "cache_conn_id": {
        "description": "Airflow connection of the execution cache database (PostgreSQL, MySQL, SQLite); "
        "when set it wins over sql_alchemy_conn.",
        "version_added": "0.1.0",
        "type": "string",
        "example": "valohai_reuse_cache",
        "default": "",
    },
    "artifact_store": {
        "description": "Where outputs are kept, content-addressed and immutable. "
        "Empty: file://$AIRFLOW_HOME/valohai-artifacts.",
        "version_added": "0.1.0",
        "type": "string",
        "example": "file:///srv/valohai-artifacts",
        "default": "",
    },
    "work_dir": {
        "description": "Host folder where each node's /valohai tree is staged and bind-mounted. When "
        "workers run in containers, mount it at the same path on the worker and the Docker host. "
        "Empty: $AIRFLOW_HOME/valohai-work.",
        "version_added": "0.1.0",
        "type": "string",
        "example": "/srv/valohai-work",
        "default": "",
    },
    "docker_url": {
        "description": "Docker daemon address for node containers. Empty: $DOCKER_HOST or the local socket.",
        "version_added": "0.1.0",
        "type": "string",
        "example": "unix://var/run/docker.sock",
        "default": "",
    },
    "pipelines_folder": {
        "description": "Folder the drop-in DAG file searches for valohai.yaml files. "
        "Empty: the folder of the drop-in DAG file.",
        "version_added": "0.1.0",
        "type": "string",
        "example": "/opt/airflow/dags/pipelines",
        "default": "",
    },
    "dag_id_prefix": {
        "description": "Prefix of every DAG id the drop-in DAG file makes.",
        "version_added": "0.1.0",
        "type": "string",
        "example": "vh_",
        "default": "",
    },
    "schedules": {
        "description": "JSON object from DAG id to a schedule (cron expression or preset such as "
        "@daily); pipelines not named run only when triggered.",
        "version_added": "0.1.0",
        "type": "string",
        "example": '{"training-pipeline": "0 2 * * *"}',
        "default": "",
    },
    "secret_env_patterns": {
        "description": "Comma-separated glob patterns of environment variable names that are secret: "
        "they reach the container but never a fingerprint, the cache or a log.",
        "version_added": "0.1.0",
        "type": "string",
        "example": "*SECRET*,*TOKEN*",
        "default": "*SECRET*,*PASSWORD*,*PASSWD*,*TOKEN*,*CREDENTIAL*,*API_KEY*",
    },
    "code_scope": {
        "description": "Default code scope of a step: auto (the files its commands name, what they import "
        "or name, and the dependency manifests) or repository (every project file). A "
        "valohai-reuse.yaml beside a valohai.yaml overrides it per project and step.",
        "version_added": "0.1.0",
        "type": "string",
        "example": "repository",
        "default": "auto",
    },
    "aws_conn_id": {
        "description": "Airflow connection for s3:// artifact stores and inputs (any S3-compatible "
        "endpoint: set endpoint_url in the connection's extra).",
        "version_added": "0.1.0",
        "type": "string",
        "example": "minio",
        "default": "aws_default",
    },
    "lease_seconds": {
        "description": "Single-flight lease: while a node with some fingerprint runs, its worker renews "
        "a lease every third of this many seconds; identical nodes elsewhere wait (deferred to the "
        "triggerer) and reuse its outputs. If the worker dies, another takes over once the lease "
        "has gone this long without renewal.",
        "version_added": "0.1.0",
        "type": "float",
        "example": "120",
        "default": "60",
    },
    "lease_poll_seconds": {
        "description": "How often a node waiting for another's identical execution checks whether it "
        "finished or its lease expired.",
        "version_added": "0.1.0",
        "type": "float",
        "example": "10",
        "default": "5",
    },
    "cache_timeout_seconds": {
        "description": "The longest any wait for the execution cache database may last (connecting, a "
        "statement, a lease renewal). A database that does not answer in time, such as a frozen server "
        "whose kernel still accepts connections, makes the node run without the cache, with a warning; "
        "further connections to it then fail at once for three times this long.",
        "version_added": "0.1.0",
        "type": "float",
        "example": "30",
        "default": "10",
    },
    "step_dags": {
        "description": "Also make one single-node DAG per step of every valohai.yaml (DAG id step_<step>, "
        "the step's parameters as Params, reuse on by default), so standalone executions are reused too. "
        "step-dags in a project's valohai-reuse.yaml wins (true, false or a list of step names).",
        "version_added": "0.1.0",
        "type": "boolean",
        "example": "True",
        "default": "False",
    },
    "decide_in_triggerer": {
        "description": "Start each plain node task (not a task node's, not one with actions or "
        "approvals) in the triggerer, which decides reuse as a worker would: a reused or pinned node "
        "ends there and takes no worker, and one whose identical execution runs elsewhere waits there; "
        "a miss, a refused pin, a retry, or a triggerer that cannot reach the pipelines folder, the "
        "cache database or the Docker daemon hands the task to a worker, which decides again. Needs a "
        "running triggerer.",
        "version_added": "0.1.0",
        "type": "boolean",
        "example": "True",
        "default": "False",
    },
    "keep_work_dirs": {
        "description": "Keep each node's staged /valohai tree after the task, for debugging.",
        "version_added": "0.1.0",
        "type": "boolean",
        "example": "True",
        "default": "False",
    },
    "price_per_hour": {
        "description": 'JSON object from a step\'s environment slug to what an hour of it costs; "*" '
        "prices every other slug (and steps that name no environment). When set, the Execution reuse "
        "page in the Airflow UI shows the compute time saved as money too.",
        "version_added": "0.1.0",
        "type": "string",
        "example": '{"aws-eu-west-1-p3-2xlarge": 3.06, "*": 0.2}',
        "default": "",
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-valohai-reuse",
        "name": "Valohai pipelines with execution reuse",
        "description": "Runs valohai.yaml pipelines as Airflow DAGs whose Docker nodes reuse identical "
        "past executions.",
        "versions": ["0.1.0"],
        "plugins": [
            {
                "name": "valohai_reuse",
                "plugin-class": "airflow_valohai_reuse.plugins.reuse.ValohaiReusePlugin",
            }
        ],
        "config": {
            "valohai_reuse": {
                "description": "Execution reuse for valohai.yaml pipelines.",
                "options": OPTIONS,
            }
        },
    }
