"""Whole runs: a reused run against Airflow's floor, a hit's overhead, a miss against DockerOperator.

- ``reused_run_vs_empty_ratio``: ``airflow dags test`` of the fully reused 3-node pipeline
  (tests/pipelines/basic) against the same three tasks as EmptyOperators, each from its own DAG
  folder, in turns.
- ``hit_overhead_ms_per_node``: a node whose inputs are 10 upstream outputs of 100 MB each, all
  hits; its task time minus an EmptyOperator's in the same ``dag.test()`` run. The node reads its
  upstreams from the run ledger (one query) and pushes one XCom; ``..._beyond_xcom`` subtracts a
  task making that one push instead (the package's own share).
- ``miss_vs_docker_operator_ratio``: the task time of a miss (a new parameter value each time)
  against a plain DockerOperator running the same 1-second container writing 100 MB, in turns.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import IMAGE, ROOT, Options, alternate, isolated_home

XCOM_KEY = "valohai_execution"

BASIC = ROOT / "tests" / "pipelines" / "basic"
WRITE_100MB = "head -c 104857600 /dev/urandom"

EMPTY_DAG = """
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("empty_three", schedule=None):
    EmptyOperator(task_id="prepare") >> EmptyOperator(task_id="fit") >> EmptyOperator(task_id="report")
"""


def _dags_test(folder: Path, dag_id: str) -> None:
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(folder), "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "dags", "test", dag_id],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or "state=success" not in done.stdout + done.stderr:
        raise RuntimeError(f"airflow dags test {dag_id} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def reused_run_vs_empty(opts: Options) -> dict[str, float]:
    pipelines = opts.workdir / "pipeline-dags"
    empty = opts.workdir / "empty-dags"
    pipelines.mkdir()
    empty.mkdir()
    for name in ("valohai_pipelines.py", "valohai_pipelines_check.py"):
        shutil.copy(ROOT / "dags" / name, pipelines / name)
    shutil.copytree(BASIC, pipelines / "basic")
    (empty / "empty_three.py").write_text(EMPTY_DAG)
    _dags_test(pipelines, "basic")  # fills the cache: the runs measured below reuse every node
    reused, floor = alternate(
        lambda: _dags_test(pipelines, "basic"),
        lambda: _dags_test(empty, "empty_three"),
        opts.repeats(7, 3),
    )
    print(f"runs: reused 3-node run {reused:.2f} s, EmptyOperators {floor:.2f} s", file=sys.stderr)
    return {"reused_run_vs_empty_ratio": reused / floor}


# -- in-process runs ------------------------------------------------------------------------------
def _sync(dag: Any) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder="/dev/null")
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def _task_seconds(dag: Any, conf: dict[str, Any] | None = None) -> dict[str, float]:
    """One ``dag.test()`` run; each task's duration as Airflow recorded it."""
    run = dag.test(run_conf=conf or {})
    if str(run.state) != "success":
        raise RuntimeError(
            f"{dag.dag_id} run failed: {[(t.task_id, t.state) for t in run.get_task_instances()]}"
        )
    return {ti.task_id: (ti.end_date - ti.start_date).total_seconds() for ti in run.get_task_instances()}


def _fan_in_yaml(producers: int) -> str:
    steps = [
        "- step:\n    name: produce\n    image: " + IMAGE + "\n    command:\n"
        f"      - {WRITE_100MB} > /valohai/outputs/part.bin\n"
        "    parameters:\n      - name: part\n        type: integer\n",
        "- step:\n    name: consume\n    image: " + IMAGE + "\n    command:\n"
        "      - cat /valohai/inputs/*/part.bin | wc -c > /valohai/outputs/total.txt\n"
        "    inputs:\n" + "".join(f"      - name: p{i}\n" for i in range(producers)),
    ]
    nodes = "".join(
        f"      - name: produce{i}\n        type: execution\n        step: produce\n"
        f"        override:\n          parameters:\n            - name: part\n              default: {i}\n"
        for i in range(producers)
    )
    nodes += "      - name: consume\n        type: execution\n        step: consume\n"
    edges = "".join(f"      - [produce{i}.output.part.bin, consume.input.p{i}]\n" for i in range(producers))
    pipeline = (
        f"- pipeline:\n    name: fan-in\n    reuse-executions: true\n    nodes:\n{nodes}    edges:\n{edges}"
    )
    return "".join(steps) + pipeline


def _one_push_operator() -> type:
    """A task making the Execution API calls a hit makes before it ends: one XCom push of a result
    (a hit reads its upstreams from the run ledger, and, having no template fields, sends its rendered
    fields only once it has ended). No template fields either, so no other call."""
    from airflow.sdk import BaseOperator

    class OnePush(BaseOperator):
        def execute(self, context: Any) -> None:
            value = {"execution_id": "x", "outputs": [{"name": "total.txt"}]}
            context["ti"].xcom_push(key="floor", value=value)

    return OnePush


def hit_overhead(opts: Options) -> dict[str, float]:
    from airflow.providers.standard.operators.empty import EmptyOperator

    from airflow_valohai_reuse import build_dags

    project = opts.workdir / "fan-in"
    project.mkdir()
    (project / "valohai.yaml").write_text(_fan_in_yaml(10))
    dag = build_dags(project / "valohai.yaml")["fan-in"]
    with dag:
        EmptyOperator(task_id="floor")
        xcom_floor = _one_push_operator()(task_id="xcom_floor")
        for i in range(10):
            dag.get_task(f"produce{i}") >> xcom_floor
    _sync(dag)
    _task_seconds(dag)  # every node runs: 10 x 100 MB of outputs
    overheads, beyond = [], []
    for _ in range(opts.repeats(9, 3)):
        seconds = _task_seconds(dag)
        overheads.append((seconds["consume"] - seconds["floor"]) * 1000)
        beyond.append((seconds["consume"] - seconds["xcom_floor"]) * 1000)
    print(f"runs: hit overheads (ms) {[round(o, 1) for o in overheads]}", file=sys.stderr)
    print(f"runs: beyond the same XCom traffic (ms) {[round(o, 1) for o in beyond]}", file=sys.stderr)
    return {
        "hit_overhead_ms_per_node": statistics.median(overheads),
        "hit_overhead_ms_per_node_beyond_xcom": statistics.median(beyond),
    }


def _miss_yaml() -> str:
    return (
        "- step:\n    name: write\n    image: " + IMAGE + "\n    command:\n"
        "      - sleep 1\n"
        f"      - {WRITE_100MB} > /valohai/outputs/data.bin\n"
        "      - echo {parameter-value:salt} > /valohai/outputs/salt.txt\n"
        "    parameters:\n      - name: salt\n        type: integer\n        default: 0\n"
        "- pipeline:\n    name: miss\n    reuse-executions: true\n"
        "    parameters:\n      - name: salt\n        target: write.parameter.salt\n        default: 0\n"
        "    nodes:\n      - name: write\n        type: execution\n        step: write\n    edges: []\n"
    )


def miss_vs_docker_operator(opts: Options) -> dict[str, float]:
    from airflow.providers.docker.operators.docker import DockerOperator
    from airflow.sdk import DAG
    from docker.types import Mount

    from airflow_valohai_reuse import build_dags

    project = opts.workdir / "miss"
    project.mkdir()
    (project / "valohai.yaml").write_text(_miss_yaml())
    reusable = build_dags(project / "valohai.yaml")["miss"]
    out = opts.workdir / "plain-out"
    out.mkdir()
    with DAG("plain_docker", schedule=None, params={"salt": 0}) as plain:
        DockerOperator(
            task_id="write",
            image=IMAGE,
            entrypoint=["/bin/sh", "-c"],
            command=[
                f"sleep 1 && {WRITE_100MB} > /out/data.bin && echo {{{{ params.salt }}}} > /out/salt.txt"
            ],
            mounts=[Mount(target="/out", source=str(out), type="bind")],
            mount_tmp_dir=False,
            auto_remove="force",
        )
    _sync(reusable)
    _sync(plain)
    salt = iter(range(1, 10_000))
    miss_times: list[float] = []
    plain_times: list[float] = []

    def miss() -> None:
        miss_times.append(_task_seconds(reusable, {"salt": next(salt)})["write"])

    def docker_operator() -> None:
        shutil.rmtree(out)
        out.mkdir()
        plain_times.append(_task_seconds(plain, {"salt": next(salt)})["write"])

    alternate(miss, docker_operator, opts.repeats(9, 3))
    miss_s, plain_s = statistics.median(miss_times[1:]), statistics.median(plain_times[1:])
    print(f"runs: miss task {miss_s:.2f} s, DockerOperator task {plain_s:.2f} s", file=sys.stderr)
    return {"miss_vs_docker_operator_ratio": miss_s / plain_s}


def run(opts: Options) -> dict[str, float]:
    isolated_home()
    started = time.monotonic()
    figures = {**reused_run_vs_empty(opts), **hit_overhead(opts), **miss_vs_docker_operator(opts)}
    print(f"runs: {time.monotonic() - started:.0f} s; {json.dumps(figures)}", file=sys.stderr)
    return figures
