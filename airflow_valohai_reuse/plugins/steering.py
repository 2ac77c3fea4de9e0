"""What the Reuse nodes view offers besides the nodes: the pipeline's parameters (the DAG's Params
besides the run options), each with the value the earlier run had, so a new run can keep the reused
nodes and change what the others get (keep preprocessing, train with other epochs). A secret
parameter's default and earlier value are not shown: left empty, the new run takes its default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.pipeline.analysis import analyses
from airflow_valohai_reuse.pipeline.params import secret_params
from airflow_valohai_reuse.plugins.lookups import pipeline_file
from airflow_valohai_reuse.settings import load_settings

#: how the page edits a value, from the Param's JSON Schema type
KINDS = ("integer", "number", "boolean", "string")


@dataclass(frozen=True)
class Parameter:
    name: str
    default: Any
    #: the earlier run's value: its conf's, else the default
    value: Any
    description: str
    #: integer, number, boolean, string, or json (anything else: edited as JSON text)
    kind: str
    #: a secret (params.py): neither its default nor the earlier run's value is on the page
    secret: bool = False


def kind_of(types: list[str | None] | None, default: Any) -> str:
    named = [t for t in types or [] if t and t != "null"]
    for kind in KINDS:
        if named == [kind]:
            return kind
    if not named and isinstance(default, bool):
        return "boolean"
    return "json" if named or not isinstance(default, str) else "string"


def parameters(dag_id: str, conf: Mapping[str, Any]) -> list[Parameter]:
    """The pipeline's parameters of ``dag_id`` (none for a DAG no valohai.yaml makes)."""
    where = pipeline_file(dag_id)
    if where is None:
        return []
    try:
        found = list(analyses(where.path, None, load_settings().dag_id_prefix, dag_id))
    except PipelineFileError:  # broken since the run: the nodes can still be reused as they were
        return []
    patterns = load_settings().secret_env_patterns
    for _, analysis in found:
        hidden = secret_params(analysis, patterns)
        return [
            Parameter(name, None, None, spec.description, kind_of(spec.type, spec.default), secret=True)
            if name in hidden
            else Parameter(
                name,
                spec.default,
                spec.default if conf.get(name) is None else conf[name],
                spec.description,
                kind_of(spec.type, spec.default),
            )
            for name, spec in sorted(analysis.params.items())
        ]
    return []


def run_conf(dag_id: str, run_id: str) -> dict[str, Any]:
    """The conf a run was triggered with (empty for none, or a run Airflow no longer has)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        conf = session.scalar(select(DagRun.conf).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return dict(conf) if isinstance(conf, Mapping) else {}
