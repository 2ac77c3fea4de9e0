"""The 100-node pipeline of bench.build, and the same DAG as a hand-written DAG file and as
dag-factory's YAML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.common import IMAGE

LAYERS = WIDTH = STEPS = 10
PIPELINE = "wide-100"
DOCKER = "airflow.providers.docker.operators.docker.DockerOperator"
EPOCHS = 3  # the pipeline parameter's default, set on the first layer's nodes
# What ReusableDockerOperator sets on top of DockerOperator's defaults; the other two builds say it too.
COMMON: dict[str, Any] = {
    "entrypoint": ["/bin/sh", "-c"],
    "working_dir": "/valohai/repository",
    "mount_tmp_dir": False,
    "auto_remove": "force",
    "xcom_all": True,
    "retries": 0,
}


# -- the pipeline --------------------------------------------------------------------------------
def _step(s: int) -> dict[str, Any]:
    out = f"/valohai/outputs/part-{s}.txt"
    return {
        "step": {
            "name": f"stage-{s}",
            "image": IMAGE,
            "command": [
                "mkdir -p /valohai/outputs",
                f"cat /valohai/inputs/data/* > {out} || true",
                f"echo 'epochs={{parameter-value:epochs}} rate={{parameter-value:rate}}' >> {out}",
                "echo {parameters}",
            ],
            "parameters": [
                {"name": "epochs", "type": "integer", "default": s + 1},
                {"name": "rate", "type": "float", "default": round(0.01 * (s + 1), 2)},
                {"name": "mode", "type": "string", "default": "fast", "pass-as": "--mode={v}"},
            ],
            "inputs": [{"name": "data", "optional": True}],
            "environment-variables": [{"name": "STAGE", "default": str(s)}, {"name": "LOG", "default": "v"}],
        }
    }


def _name(layer: int, i: int) -> str:
    return f"l{layer}-n{i}"


def _step_of(layer: int, i: int) -> int:
    return (layer + i) % STEPS


def _pipeline() -> dict[str, Any]:
    nodes, edges = [], []
    for layer in range(LAYERS):
        for i in range(WIDTH):
            nodes.append(
                {"name": _name(layer, i), "type": "execution", "step": f"stage-{_step_of(layer, i)}"}
            )
            for j in sorted({i, (i + 1) % WIDTH}) if layer else ():
                source = f"{_name(layer - 1, j)}.output.part-{_step_of(layer - 1, j)}.txt"
                edges.append([source, f"{_name(layer, i)}.input.data"])
    first = [f"{_name(0, i)}.parameter.epochs" for i in range(WIDTH)]
    return {
        "pipeline": {
            "name": PIPELINE,
            "reuse-executions": True,
            "parameters": [{"name": "epochs", "targets": first, "default": EPOCHS}],
            "nodes": nodes,
            "edges": edges,
        }
    }


def write_valohai_yaml(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "valohai.yaml"
    path.write_text(yaml.safe_dump([*(_step(s) for s in range(STEPS)), _pipeline()], sort_keys=False))
    return path


# -- the same DAG, written out by hand -----------------------------------------------------------
@dataclass(frozen=True)
class Task:
    task_id: str
    image: str
    command: str
    environment: dict[str, str]
    upstream: tuple[str, ...]  # task ids


def plain_tasks(path: Path) -> list[Task]:
    """Each node as a plain DockerOperator would run it: the step's command rendered with its values."""
    from airflow_valohai_reuse.pipeline.pipelinefile import config_of, read_items
    from airflow_valohai_reuse.pipeline.stepdef import environment_values, render_script, resolve_parameters

    config = config_of(read_items(path), path)
    pipeline, steps = config.pipelines[PIPELINE], config.steps
    tasks = []
    for node in pipeline.nodes:
        step = steps[node.step]
        given = {"epochs": EPOCHS} if node.name.startswith("l0-") else {}
        upstream = sorted({e.source_node for e in pipeline.edges if e.target_node == node.name})
        command = render_script(step, resolve_parameters(step, given))
        tasks.append(Task(node.name, step.image, command, environment_values(step, {}), tuple(upstream)))
    return tasks


_FLOOR_HEAD = """from datetime import UTC, datetime, timedelta

from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import DAG, Param

with DAG(
    {dag_id!r},
    description={description!r},
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["valohai"],
    params={{
        "reuse_executions": Param(True, type="boolean"),
        "reuse_nodes": Param({{}}, type="object"),
        "epochs": Param({epochs}, type=["integer", "null"]),
    }},
) as dag:
"""
_FLOOR_TASK = """    {var} = DockerOperator(
        task_id={t.task_id!r},
        image={t.image!r},
        command={t.command!r},
        environment={t.environment!r},
        {common},
        retry_delay=timedelta(seconds=30),
    )
"""


def floor_source(tasks: list[Task]) -> str:
    """A DAG file as someone would write it by hand: literals, one operator call per node."""
    var = {t.task_id: t.task_id.replace("-", "_") for t in tasks}
    common = ", ".join(f"{k}={v!r}" for k, v in COMMON.items())
    text = _FLOOR_HEAD.format(dag_id=PIPELINE, description=f"valohai.yaml pipeline {PIPELINE}", epochs=EPOCHS)
    text += "".join(_FLOOR_TASK.format(var=var[t.task_id], t=t, common=common) for t in tasks)
    return text + "".join(f"    {var[u]} >> {var[t.task_id]}\n" for t in tasks for u in t.upstream)


def dag_factory_config(tasks: list[Task]) -> dict[str, Any]:
    """dag-factory's YAML for the same DAG (tasks as a mapping, ``dependencies`` for the edges)."""
    return {
        "default": {
            "default_args": {
                "start_date": "2024-01-01",
                "retry_delay": {"__type__": "datetime.timedelta", "seconds": 30},
            }
        },
        PIPELINE: {
            "description": f"valohai.yaml pipeline {PIPELINE}",
            "schedule": None,
            "catchup": False,
            "tags": ["valohai"],
            "params": {"reuse_executions": True, "reuse_nodes": {}, "epochs": EPOCHS},
            "tasks": {
                t.task_id: {
                    "operator": DOCKER,
                    "image": t.image,
                    "command": t.command,
                    "environment": t.environment,
                    **COMMON,
                    **({"dependencies": list(t.upstream)} if t.upstream else {}),
                }
                for t in tasks
            },
        },
    }
