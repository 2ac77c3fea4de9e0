"""valohai.yaml → Airflow: one DAG per pipeline, one ReusableDockerOperator per execution node.

A task node (parameter sweep) becomes one mapped ReusableDockerOperator, one map index per variant.

The module where pipeline specs (pipeline/) become Airflow objects: DAGs, Params, tasks, mapping.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param
from valohai_yaml.objs import Pipeline, Step

from airflow_valohai_reuse.contracts import XCOM_KEY
from airflow_valohai_reuse.factory.control import add_approvals, add_status_task, node_kwargs
from airflow_valohai_reuse.operators.reusable_docker import ReusableDockerOperator
from airflow_valohai_reuse.pipeline.analysis import Analysis, analyses, safe_id
from airflow_valohai_reuse.pipeline.describe import pipeline_doc
from airflow_valohai_reuse.pipeline.failures import Regime, RunRules, run_rules
from airflow_valohai_reuse.pipeline.masked import mask_variants
from airflow_valohai_reuse.pipeline.params import dag_params, secret_params
from airflow_valohai_reuse.pipeline.specs import node_spec, pipeline_spec
from airflow_valohai_reuse.pipeline.stepdef import is_secret
from airflow_valohai_reuse.pipeline.tasknodes import Sweep
from airflow_valohai_reuse.pipeline.variants import spread
from airflow_valohai_reuse.settings import load_settings

log = logging.getLogger(__name__)

START_DATE = datetime(2024, 1, 1, tzinfo=UTC)

_STEP = "it is the step's {} in valohai.yaml, which the node's fingerprint covers"
#: node-task arguments that ``operator_kwargs`` may not set, and why: each is decided by valohai.yaml
#: or by the factory, and given here it would be overwritten when the node runs, or change what runs
#: without changing the fingerprint (a false hit)
NOT_TAKEN = {
    "image": _STEP.format("image"),
    "command": _STEP.format("command"),
    "environment": _STEP.format("environment-variables"),
    "private_environment": _STEP.format("environment-variables"),
    "env_file": _STEP.format("environment-variables"),
    "entrypoint": "a node's commands run in one shell as on Valohai (bash where the image has it)",
    "working_dir": "a node runs in /valohai/repository, as on Valohai",
    "mounts": "a node's mounts are the /valohai tree it stages",
    "force_pull": "the container starts from the image the fingerprint identified (an absent image is "
    "pulled once, before the decision)",
    **dict.fromkeys(
        ("task_id", "task_display_name", "dag", "node", "pipeline", "variant", "rules"),
        "it is set from the pipeline's node",
    ),
}


def build_dags(
    path: str | Path,
    *,
    dag_id_prefix: str = "",
    schedules: Mapping[str, Any] | None = None,
    repository: str | Path | None = None,
    operator_kwargs: Mapping[str, Any] | None = None,
    only_dag_id: str | None = None,
    decide_in_triggerer: bool | None = None,
) -> dict[str, DAG]:
    """Build one DAG per pipeline of a valohai.yaml, without side effects.

    ``schedules`` maps DAG ids (or pipeline names) to a schedule; ``repository`` is the code folder
    mounted as /valohai/repository (default: the file's folder); ``operator_kwargs`` go to every
    node task (``docker_url``, ``network_mode``, ``retries``…; what valohai.yaml decides is refused,
    see :data:`NOT_TAKEN`); ``only_dag_id`` builds one DAG; ``decide_in_triggerer``: whether plain
    node tasks start in the triggerer (None: the ``[valohai_reuse] decide_in_triggerer`` setting).
    """
    kwargs = dict(operator_kwargs or {})
    refused = [key for key in kwargs if key in NOT_TAKEN]
    if refused:
        key = refused[0]
        raise TypeError(f"build_dags: operator_kwargs cannot set {key!r}: {NOT_TAKEN[key]}")
    settings = load_settings()
    secrets = settings.secret_env_patterns
    in_triggerer = settings.decide_in_triggerer if decide_in_triggerer is None else decide_in_triggerer
    return {
        dag_id: _build_dag(
            analysis, dag_id, _schedule(schedules, dag_id, analysis.pipeline), kwargs, secrets, in_triggerer
        )
        for dag_id, analysis in analyses(path, repository, dag_id_prefix, only_dag_id)
    }


def _schedule(schedules: Mapping[str, Any] | None, dag_id: str, pipeline: Pipeline) -> Any:
    return (schedules or {}).get(dag_id, (schedules or {}).get(pipeline.name))


def _resource_kwargs(step: Step) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    data = step.resources.get_data() or {}
    gpus = (data.get("devices") or {}).get("nvidia.com/gpu")
    if gpus:
        from docker.types import DeviceRequest

        kwargs["device_requests"] = [DeviceRequest(count=int(gpus), capabilities=[["gpu"]])]
    cpu = (data.get("cpu") or {}).get("max")
    if cpu:
        kwargs["cpus"] = float(cpu)
    memory = (data.get("memory") or {}).get("max")
    if memory:
        kwargs["mem_limit"] = f"{int(memory)}m"
    if step.time_limit:
        kwargs["execution_timeout"] = step.time_limit
    return kwargs


def _mapped(
    partial: Any, variants: list[dict[str, Any]], sweep: Sweep, task_id: str, tasks: dict[str, Any]
) -> Any:
    """A task node: one mapped task instance per variant, fixed (``variants``, a secret's value as a
    reference) or spread from upstream metadata.

    Spread variants come from a small task that reads the upstream node's metadata, because
    Airflow maps only over return values.
    """
    if sweep.spread_from is None:
        return partial.expand(variant=variants)
    from airflow.sdk import XComArg, task

    edge = sweep.spread_from
    source = tasks[edge.source_task]
    variants = task(task_id=f"{task_id}__variants", task_display_name=f"{edge.target_key} variants")(spread)(
        XComArg(source, key=XCOM_KEY), edge.source_key, edge.target_key
    )
    return partial.expand(variant=variants)


def _params(a: Analysis, secrets: tuple[str, ...]) -> dict[str, Param]:
    """The run options, then the pipeline parameters (a secret's default withheld: params.py)."""
    return {name: Param(option.default, **option.schema) for name, option in dag_params(a, secrets).items()}


def _secret_parameters(a: Analysis, name: str, secrets: tuple[str, ...]) -> set[str]:
    """Node ``name``'s step parameters whose values are secrets': named like one, or set by a secret
    pipeline parameter."""
    hidden = secret_params(a, secrets)
    found = {p for p in a.steps[name].parameters if is_secret(p, secrets)}
    for pipeline_param, parameters in a.targets.get(name, {}).items():
        if pipeline_param in hidden:
            found.update(parameters)
    return found


def _dag(a: Analysis, dag_id: str, schedule: Any, rules: RunRules, secrets: tuple[str, ...]) -> DAG:
    pipeline = a.pipeline
    return DAG(
        dag_id,
        dag_display_name=pipeline.name,
        description=f"valohai.yaml pipeline {pipeline.name}",
        doc_md=pipeline_doc(a, secrets),  # stored in the metadata DB: secret-named values masked
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        tags=["valohai"],
        fail_fast=rules.regime is Regime.FAIL_FAST,
    )


def _trigger_facts(a: Analysis, dag_id: str, rules: RunRules, name: str) -> dict[str, Any] | None:
    """What the triggerer rebuilds node ``name`` from, for a node it may decide: a plain node whose
    start needs no check of the run, with no actions or approvals, that no task node maps over; None
    for any other (its worker decides, as without ``decide_in_triggerer``)."""
    task_id = a.task_ids[name]
    mapped = {a.task_ids[n] for n in a.sweeps}
    if name in a.sweeps or a.actions.get(name) or rules.check_start:
        return None
    if any(source == task_id and target in mapped for source, target in a.deps):
        return None
    if any(s.spread_from is not None and s.spread_from.source_node == name for s in a.sweeps.values()):
        return None
    prefix = dag_id.removesuffix(safe_id(a.pipeline.name))
    facts = {"path": str(a.path), "repository": str(a.repo), "prefix": prefix, "dag_id": dag_id}
    return {**facts, "task_id": task_id, "node": name}


def _build_dag(
    a: Analysis,
    dag_id: str,
    schedule: Any,
    operator_kwargs: dict[str, Any],
    secrets: tuple[str, ...],
    in_triggerer: bool = False,
) -> DAG:
    spec = pipeline_spec(a)
    rules = run_rules(a)
    dag = _dag(a, dag_id, schedule, rules, secrets)
    feeds = {s.spread_from.source_node for s in a.sweeps.values() if s.spread_from is not None}
    tasks: dict[str, Any] = {}
    # A node whose metadata spreads a task node's variants is made first: the mapping refers to it.
    for name in sorted(a.task_ids, key=lambda n: n not in feeds):
        task_id = a.task_ids[name]
        kwargs = {**_resource_kwargs(a.steps[name]), **operator_kwargs}
        kwargs.setdefault("retries", 0)
        kwargs.setdefault("retry_delay", timedelta(seconds=30))
        node = node_spec(a, name)
        variants: list[dict[str, Any]] = []
        if name in a.sweeps:
            variants, kept = mask_variants(a.sweeps[name].variants, _secret_parameters(a, name, secrets))
            node = replace(node, secret_variants=kept)
        kwargs.update(task_id=task_id, task_display_name=name, node=node, pipeline=spec, dag=dag)
        kwargs.update(node_kwargs(rules, task_id, operator_kwargs))
        if name in a.sweeps:
            partial = ReusableDockerOperator.partial(**kwargs)
            tasks[task_id] = _mapped(partial, variants, a.sweeps[name], task_id, tasks)
        else:
            tasks[task_id] = ReusableDockerOperator(**kwargs)
            tls = any(operator_kwargs.get(k) for k in ("tls_ca_cert", "tls_client_cert", "tls_client_key"))
            facts = _trigger_facts(a, dag_id, rules, name) if in_triggerer and not tls else None
            if facts is not None:
                tasks[task_id].decide_in_triggerer(facts)
    for source, target in sorted(a.deps):
        tasks[source] >> tasks[target]
    add_approvals(dag, a, rules, tasks)
    add_status_task(dag, rules)
    # The Params are set once the tasks exist: a task made in a DAG with Params deep-copies them (once
    # per class in its hierarchy), which made most of a 100-node DAG's build time, and a run gives
    # every task the DAG's Params anyway.
    dag.params = _params(a, secrets)
    return dag
