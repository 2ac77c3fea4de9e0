"""What a node's container is given besides its image: labels, environment, config, and its record."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow_valohai_reuse.contracts import NODE_LABELS, Execution, Output
from airflow_valohai_reuse.pipeline.spec import NodeSpec
from airflow_valohai_reuse.pipeline.stepdef import is_secret
from airflow_valohai_reuse.reuse.resolve import Resolved


def labels(dag_id: str, run_id: str, task_id: str, execution_id: str, fingerprint: str, holder: str) -> dict:
    """Who a container belongs to: what gc and a lease takeover look for (orphans.py)."""
    return dict(zip(NODE_LABELS, (dag_id, run_id, task_id, execution_id, fingerprint, holder), strict=True))


def split_secrets(variables: Mapping[str, str], patterns: tuple[str, ...]) -> tuple[dict, dict]:
    """(public, secret) environment variables: secrets go to the container, never to a log."""
    secret = {k: v for k, v in variables.items() if is_secret(k, patterns)}
    return {k: v for k, v in variables.items() if k not in secret}, secret


def mask_secrets(
    variables: Mapping[str, str], parameters: Mapping[str, Any], patterns: tuple[str, ...]
) -> None:
    """Have Airflow's log redaction hide secret values the container might print."""
    from airflow.sdk.log import mask_secret

    # No name given: the value is masked whatever Airflow's own list of sensitive names says.
    for value in variables.values():
        mask_secret(value)
    for name, value in parameters.items():
        if is_secret(name, patterns):
            mask_secret(value)


def execution_json(node: NodeSpec, image: str, dag_id: str, run_id: str, execution_id: str) -> dict[str, Any]:
    """``/valohai/config/execution.json``: facts about the execution, as Valohai writes them."""
    return {
        "valohai.execution-id": execution_id,
        "valohai.execution-step": node.step.name,
        "valohai.execution-image": image,
        "valohai.pipeline-title": node.pipeline,
        "valohai.pipeline-node-name": node.node,
        "airflow.dag-id": dag_id,
        "airflow.run-id": run_id,
    }


def execution_record(
    node: NodeSpec,
    resolved: Resolved,
    run: Mapping[str, Any],
    *,
    execution_id: str,
    where: tuple[str, str, str],
    started: datetime,
    duration_s: float,
    outputs: list[Output],
    metadata: dict[str, Any],
    metadata_series: dict[str, list[Any]] | None = None,
) -> Execution:
    """The record of a node that ran. ``run``: its public parameters, inputs and environment;
    ``where``: its DAG, run and task ids."""
    fingerprint = resolved.fingerprint
    finished = datetime.now(UTC)
    dag_id, run_id, task_id = where
    return Execution(
        id=execution_id,
        fingerprint=fingerprint.digest,
        fingerprint_version=fingerprint.version,
        step=node.step.name,
        components=dict(fingerprint.components),
        outputs=outputs,
        parameters=run["parameters"],
        inputs=run["inputs"],
        environment=run["environment"],
        metadata=metadata,
        metadata_series=dict(metadata_series or {}),
        pipeline=node.pipeline,
        node=node.node,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        started_at=started,
        finished_at=finished,
        duration_s=duration_s,
        expires_at=finished + node.ttl if node.ttl else None,
    )
