"""Task nodes (parameter sweeps): the variants a sweep runs, and what a sweep hands downstream.

Pure code: the factory turns a task node into one mapped task per variant; a downstream node merges
the variants' published executions into one upstream value.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from valohai_yaml.objs.task import Task, TaskType
from valohai_yaml.objs.variant_parameter import VariantParameter, VariantParameterStyle

from airflow_valohai_reuse.contracts import Upstream

log = logging.getLogger(__name__)

SUPPORTED_TASK_TYPES = (TaskType.GRID_SEARCH, TaskType.MANUAL_SEARCH)


class VariantError(ValueError):
    """A sweep that cannot be expanded into a fixed list of variants."""


def _rule(vp: VariantParameter, key: str, default: Any = None) -> Any:
    value = vp.rules.get(key, default)
    if value is None:
        raise VariantError(f"parameter {vp.name!r} ({vp.style.value}) needs rules.{key}")
    return value


def _linear(vp: VariantParameter) -> list[Any]:
    start, end, step = _rule(vp, "start"), _rule(vp, "end"), _rule(vp, "step")
    if step == 0 or (end - start) * step < 0:
        raise VariantError(f"parameter {vp.name!r} (linear): step {step} never reaches {end} from {start}")
    count = int((end - start) / step + 1e-9) + 1
    exact = all(isinstance(v, int) for v in (start, end, step))
    return [start + i * step if exact else round(start + i * step, 12) for i in range(count)]


def _logspace(vp: VariantParameter) -> list[Any]:
    start, end = _rule(vp, "start"), _rule(vp, "end")
    count, base = int(_rule(vp, "count")), _rule(vp, "base", 10)
    if count < 1:
        raise VariantError(f"parameter {vp.name!r} (logspace): count must be at least 1")
    exponents = [start] if count == 1 else [start + (end - start) * i / (count - 1) for i in range(count)]
    return [float(f"{base**e:.12g}") for e in exponents]


def axis_values(vp: VariantParameter) -> list[Any]:
    """The values one swept parameter takes, in order."""
    if vp.style == VariantParameterStyle.MULTIPLE:
        values = list(_rule(vp, "items"))
    elif vp.style == VariantParameterStyle.LINEAR:
        values = _linear(vp)
    elif vp.style == VariantParameterStyle.LOGSPACE:
        values = _logspace(vp)
    elif vp.style == VariantParameterStyle.SINGLE:
        values = [_rule(vp, "value")]
    else:
        raise VariantError(f"parameter {vp.name!r}: style {vp.style.value!r} is not supported")
    if vp.rules.get("integerify"):
        values = [round(v) for v in values]
    if not values:
        raise VariantError(f"parameter {vp.name!r} ({vp.style.value}) gives no values")
    return values


def blueprint_axes(task: Task) -> dict[str, list[Any]]:
    """Swept parameter name → values, in declaration order, from a ``task:`` blueprint."""
    if task.type not in SUPPORTED_TASK_TYPES:
        raise VariantError(
            f"task type {task.type.value!r} is not supported (only grid_search and manual_search)"
        )
    return {vp.name: axis_values(vp) for vp in task.parameters}


def grid(axes: Mapping[str, Sequence[Any]], parameter_sets: Sequence[Mapping[str, Any]] = ()) -> list[dict]:
    """Every combination of the axes (first axis slowest), each combined with every parameter set."""
    names = list(axes)
    points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]
    if parameter_sets:
        points = [{**point, **dict(ps)} for point in points for ps in parameter_sets]
    return points or [{}]


def merge_executions(task_id: str, values: Sequence[Any]) -> Upstream:
    """One upstream from a mapped (task node) upstream's per-variant results (XCom values, or
    records), merged as :meth:`Upstream.merged` says."""
    if not values or not all(isinstance(v, Mapping | Upstream) for v in values):
        raise RuntimeError(f"upstream task {task_id!r} left a variant without its XCom; was it cleared?")
    merged = Upstream.merged([v if isinstance(v, Upstream) else Upstream.from_xcom(v) for v in values])
    names = [o.name for o in merged.outputs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        log.warning(
            "%s: outputs %s come from several variants; an input receiving them keeps the last",
            task_id,
            ", ".join(repeated),
        )
    log.info(
        "%s has %d variants: their outputs are passed on; parameter, metadata and environment values "
        "are not (they differ per variant)",
        task_id,
        len(values),
    )
    return merged


def spread(upstream: Upstream | Mapping[str, Any], metadata_key: str, parameter: str) -> list[dict[str, Any]]:
    """A task node's variants from an upstream node's metadata (its record, or its XCom where a task
    spreads them at run time): one per list item, or one for a value."""
    metadata = upstream.metadata if isinstance(upstream, Upstream) else upstream.get("metadata", {})
    if metadata_key not in metadata:
        log.warning("metadata %r was not printed upstream: the task node has no variants", metadata_key)
        return []
    value = metadata[metadata_key]
    items = value if isinstance(value, list) else [value]
    log.info("metadata %r gives %d variant(s) of parameter %r", metadata_key, len(items), parameter)
    return [{parameter: item} for item in items]
