"""A node task's view of the run's pins (``reuse_nodes``, ``reuse_from_run``) and of its conf."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NoReturn

from airflow_valohai_reuse.cache.refusals import keep_refusal
from airflow_valohai_reuse.contracts import Cache, Execution
from airflow_valohai_reuse.errors import ManualReuseError
from airflow_valohai_reuse.pipeline.options import (
    REUSE_FROM_RUN,
    REUSE_NODES,
    unknown_keys,
    unknown_keys_warning,
)
from airflow_valohai_reuse.pipeline.spec import PipelineSpec
from airflow_valohai_reuse.reuse.pins import check_pins

if TYPE_CHECKING:
    from airflow.sdk import Context


def run_pins(
    context: Context, pipeline: PipelineSpec, node: str, cache: Cache, log: logging.Logger
) -> tuple[dict[str, Execution], ManualReuseError | None]:
    """The run's pins that hold, and the refusal of those that do not; conf keys that change nothing
    are logged. A refused pin fails its own node's task at once, in one line; any other node may still
    reuse, and fails the same way (:func:`refuse`) only where it would start a container, so none
    starts."""
    params = context["params"]
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    unknown = unknown_keys(conf, pipeline.parameters)
    if unknown:
        log.warning("%s", unknown_keys_warning(unknown, pipeline.parameters))
    try:
        pins = check_pins(
            params.get(REUSE_NODES), pipeline, cache, params.get(REUSE_FROM_RUN), dag_id=context["dag"].dag_id
        )
    except ManualReuseError as exc:
        if exc.stops(node):
            keep_refusal(cache.url, context["dag"].dag_id, context["run_id"], exc.problems)  # Reuse tab
            refuse(exc, node, log)
        return exc.accepted, exc
    return pins, None


def refuse(refused: ManualReuseError, node: str, log: logging.Logger) -> NoReturn:
    """Fail ``node``'s task with the refusal's one line."""
    log.error("%s", refused.concerning(node))
    raise SystemExit(1) from None  # the one exception Airflow logs without a traceback
