"""What crosses a layer, defined once and importable without Airflow: the names the parts agree on
(names.py), the words of their protocols (words.py), the records that travel between them
(records.py; the run ledger's and the leases' in ledger.py), and what they ask of the cache and the
artifact store (protocols.py)."""

from __future__ import annotations

from airflow_valohai_reuse.contracts.ledger import Entry, LeaseOwner, Ledger, RunNode, TaskKey
from airflow_valohai_reuse.contracts.manifest import INLINE_OUTPUTS, MANIFEST_KEY, referenced, with_outputs
from airflow_valohai_reuse.contracts.names import (
    APP_PREFIX,
    DAG_ID_LABEL,
    DEFAULT_DOCKER_URL,
    EXECUTION_ID_LABEL,
    FINGERPRINT_LABEL,
    LABEL,
    LEASE_HOLDER_LABEL,
    NAV_ROUTE,
    NODE_LABELS,
    OPERATOR_NAME,
    RUN_ID_LABEL,
    STATUS_TASK,
    STOP_KEY,
    TASK_ID_LABEL,
    XCOM_KEY,
    map_index_of,
)
from airflow_valohai_reuse.contracts.protocols import (
    ArtifactStore,
    Cache,
    ExecutionLookup,
    LeaseSource,
    LedgerReader,
    Recorder,
    StatSource,
)
from airflow_valohai_reuse.contracts.records import (
    REUSED_KINDS,
    Execution,
    Kind,
    Output,
    Published,
    Upstream,
)
from airflow_valohai_reuse.contracts.words import ChangeKind, PlanStatus, SourceKind, WaitState

__all__ = [
    "APP_PREFIX",
    "DAG_ID_LABEL",
    "DEFAULT_DOCKER_URL",
    "EXECUTION_ID_LABEL",
    "FINGERPRINT_LABEL",
    "INLINE_OUTPUTS",
    "LABEL",
    "LEASE_HOLDER_LABEL",
    "MANIFEST_KEY",
    "NAV_ROUTE",
    "NODE_LABELS",
    "OPERATOR_NAME",
    "REUSED_KINDS",
    "RUN_ID_LABEL",
    "STATUS_TASK",
    "STOP_KEY",
    "TASK_ID_LABEL",
    "XCOM_KEY",
    "ArtifactStore",
    "Cache",
    "ChangeKind",
    "Entry",
    "Execution",
    "ExecutionLookup",
    "Kind",
    "LeaseOwner",
    "LeaseSource",
    "Ledger",
    "LedgerReader",
    "Output",
    "PlanStatus",
    "Published",
    "Recorder",
    "RunNode",
    "SourceKind",
    "StatSource",
    "TaskKey",
    "Upstream",
    "WaitState",
    "map_index_of",
    "referenced",
    "with_outputs",
]
