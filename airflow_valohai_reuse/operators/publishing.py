"""How a node task publishes its result: the run ledger's row (with the execution record where it ran),
the ``valohai_execution`` XCom, and the node's node-complete actions."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_valohai_reuse.background import in_background
from airflow_valohai_reuse.contracts import XCOM_KEY, Cache, Entry, Execution, Kind, Published, TaskKey
from airflow_valohai_reuse.operators.nodeactions import fire
from airflow_valohai_reuse.pipeline.actions import When
from airflow_valohai_reuse.pipeline.spec import NodeSpec
from airflow_valohai_reuse.reuse.decide import reuse_line

if TYPE_CHECKING:
    from airflow.sdk import Context


class Publisher:
    """One task instance's publishing: ``node`` is its pipeline node, ``key`` its ledger key;
    ``returns_value``: a task node maps over this node's result, which Airflow reads only from a
    return value (otherwise the XCom alone carries it)."""

    def __init__(
        self,
        node: NodeSpec,
        context: Context,
        cache: Cache,
        key: TaskKey,
        *,
        returns_value: bool,
        logger: logging.Logger,
    ) -> None:
        self.node, self.context, self.cache, self.key = node, context, cache, key
        self.returns_value = returns_value
        self.log = logger

    def entry(self, published: Published, **what: Any) -> Entry:
        """The ledger row; ``what``: ``saved_s`` of a reused node, ``reason`` of one that ran."""
        try_number = getattr(self.context["ti"], "try_number", None)
        return Entry(self.key, published, try_number, self.node.pipeline, **what)

    def reuse(
        self, execution: Execution, kind: Kind, run: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Publish an earlier execution (reused or pinned); the log's line says from where."""
        self.log.info("%s", reuse_line(kind, execution))
        published = Published.of(execution, kind, self.node.node, run)
        return self.publish_unrecorded(published, saved_s=execution.duration_s)

    def record(self, execution: Execution, published: Published, reason: str) -> dict[str, Any] | None:
        """Publish an execution this task ran: recorded with its ledger row in one transaction."""
        recorded = self.cache.record(execution, self.entry(published, reason=reason))
        if not recorded:
            self.log.warning("execution %s was not recorded in the cache; its outputs are kept", execution.id)
        return self.push(published, recorded=recorded)

    def publish_unrecorded(self, published: Published, **what: Any) -> dict[str, Any] | None:
        """Publish an execution without recording it for reuse (an earlier one, or one whose inputs
        changed as it ran): the ledger row, written while the XCom is pushed (a downstream task reads
        either only once this one has ended)."""
        entry = self.entry(published, **what)
        writing = in_background(lambda: self.cache.publish(entry), "ledger-row")
        try:
            # an earlier execution's record is in the cache database: many outputs are referenced there
            return self.push(published, recorded=published.kind.reused)
        finally:
            writing()

    def push(self, published: Published, *, recorded: bool) -> dict[str, Any] | None:
        """``recorded``: the cache database holds the execution's record (see ``Published.as_xcom``)."""
        value = published.as_xcom(recorded)
        self.context["ti"].xcom_push(key=XCOM_KEY, value=value)
        fire(
            self.node,
            When.COMPLETE,
            self.context,
            self.log,
            metadata=value["metadata"],
            parameters=value["parameters"],
        )
        # The same value as the return value would cost a second XCom write per node; Airflow
        # needs one only where a task node maps over this node's output.
        return value if self.returns_value else None
