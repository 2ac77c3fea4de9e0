"""Steps as DAGs of their own: a project opts in (``step-dags`` in valohai-reuse.yaml or ``[valohai_reuse]
step_dags``) to one single-node DAG per step, so standalone executions get reuse as pipeline nodes do.

Each step becomes a pipeline of one execution node whose parameters are pipeline parameters, so the
DAG's Params, the trigger form, the REST API, plans and reuse work exactly as for a written pipeline.
"""

from __future__ import annotations

from pathlib import Path

from valohai_yaml.objs import Config, Pipeline, Step
from valohai_yaml.objs.pipelines.execution_node import ExecutionNode
from valohai_yaml.objs.pipelines.pipeline_parameter import PipelineParameter

from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.pipeline.options import NAMES as RESERVED_PARAMS

PREFIX = "step "


def _pipeline(step: Step, path: Path) -> Pipeline:
    node = step.name.replace(".", "_")  # targets are split on dots
    for name in step.parameters:
        if name in RESERVED_PARAMS:
            raise PipelineFileError(
                str(path),
                f"step {step.name!r}: parameter {name!r} is a run option's name, so the step cannot be a "
                "DAG of its own (step-dags); rename the parameter or leave the step out of step-dags",
            )
    parameters = [
        PipelineParameter(
            name=name,
            targets=[f"{node}.parameter.{name}"],
            default=p.default,
            description=p.description or f"parameter {name} of step {step.name}",
        )
        for name, p in step.parameters.items()
    ]
    return Pipeline(
        name=f"{PREFIX}{step.name}",
        nodes=[ExecutionNode(name=node, step=step.name)],
        edges=[],
        parameters=parameters,
        reuse_executions=True,
    )


def step_pipelines(config: Config, wanted: bool | tuple[str, ...], path: Path) -> list[Pipeline]:
    """One single-node pipeline per step (``wanted``: every step, none, or these step names)."""
    if wanted is True:
        names = list(config.steps)
    elif not wanted:
        return []
    else:
        names = list(wanted)
        unknown = [n for n in names if n not in config.steps]
        if unknown:
            raise PipelineFileError(
                str(path.parent / "valohai-reuse.yaml"),
                f"step-dags names step {unknown[0]!r}, which {path.name} does not define",
                "step-dags",
            )
    return [_pipeline(config.steps[name], path) for name in names]
