"""A node's stop-pipeline, error-pipeline and noop actions at run time (pipeline/actions.py says when
they fire). A firing action leaves its reason in the node task's ``valohai_stop`` XCom, which the run's
other tasks read before they start and the ``valohai_pipeline`` task reads at the end."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_valohai_reuse.contracts import STOP_KEY
from airflow_valohai_reuse.pipeline.actions import Then, When, firing
from airflow_valohai_reuse.pipeline.spec import NodeSpec

if TYPE_CHECKING:
    from airflow.sdk import Context


def fire(
    node: NodeSpec,
    when: When,
    context: Context,
    logger: logging.Logger,
    *,
    metadata: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> None:
    """Apply the node's actions at ``when``. At node-starting a stop skips the node itself; an
    error-pipeline fails the node task (its execution, if it completed, stays recorded and published)."""
    if not node.actions:
        return
    fired = firing(node.actions, when, [(metadata or {}, parameters or {})])
    for _then, why in fired:
        logger.info("action of node %r at %s: %s", node.node, when.value, why)
    stopping = [(then, why) for then, why in fired if then in (Then.STOP, Then.ERROR)]
    if not stopping:
        return
    then, why = next((f for f in stopping if f[0] is Then.ERROR), stopping[0])
    context["ti"].xcom_push(key=STOP_KEY, value={"then": then.value, "why": why, "node": node.node})
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    if then is Then.ERROR and when is not When.ERROR:
        raise AirflowFailException(f"{why}: the pipeline ends in error")
    if when is When.STARTING:
        raise AirflowSkipException(f"{why}: the pipeline stops before node {node.node!r} starts")
    logger.info("%s: the pipeline stops after node %r", why, node.node)
