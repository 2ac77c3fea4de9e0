"""Building a 100-node pipeline's DAG: build_dags vs hand-written Python, and vs dag-factory.

The pipeline, made at run time: 10 steps (a four-line command, three typed parameters, one input,
two environment variables each) and 100 execution nodes in 10 layers of 10, each node reading the
outputs of two nodes of the layer before (190 edges). The floor is a hand-written DAG file of 100
plain DockerOperators with the same task ids, images, rendered commands, environment and
dependencies, compiled once (as a cached .pyc); dag-factory loads its YAML for the same DAG.

Airflow 3's DAG processor parses each file in a child forked from its manager, which holds Airflow
and the ``airflow.*`` modules DAG files import, so no memo survives from one parse to the next.
The memos on build_dags' path, valohai-yaml's compiled validator (``get_validator``) and the
package's validator built on it (``pipelinefile.validator``), are cleared before every timed build
(a Celery worker builds them before it forks; the DAG processor does not). The ratios time
builds in this process, modules loaded; a printed second measurement times whole parses in forked
children, imports included.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import struct
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.build_pipeline import (
    LAYERS,
    PIPELINE,
    WIDTH,
    Task,
    dag_factory_config,
    floor_source,
    plain_tasks,
    write_valohai_yaml,
)
from bench.common import Options, airflow_environment, alternate, bench_only

DAG_FACTORY = "dag-factory==1.1.0"


def _environ(workdir: Path) -> None:
    """A private Airflow home (building DAGs never opens the metadata DB), set before Airflow
    loads; bytecode cached in the scratch folder, so a forked parse imports as a deployment does."""
    sys.pycache_prefix = str(workdir / "pycache")
    sys.dont_write_bytecode = False
    airflow_environment(
        workdir / "airflow-home", AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY="False", DO_NOT_TRACK="1"
    )


# -- checks and timing ---------------------------------------------------------------------------
def _shape(dag: Any) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each node task's image and upstreams (ours also builds the run's verdict task, which the
    others lack: it stays in the time, not in the comparison)."""
    from airflow_valohai_reuse.contracts import STATUS_TASK

    nodes = [t for t in dag.tasks if t.task_id != STATUS_TASK]
    return {t.task_id: (t.image, tuple(sorted(t.upstream_task_ids))) for t in nodes}


def _check_same(tasks: list[Task], ours: Any, floor: Any, factory: Any) -> None:
    """The three builds make the same 100 tasks: images, dependencies, and for the two plain ones,
    the commands and environment the product's operator renders at run time."""
    shapes = [_shape(ours), _shape(floor), _shape(factory)]
    if not (len(shapes[0]) == LAYERS * WIDTH and shapes[0] == shapes[1] == shapes[2]):
        raise AssertionError("the three builds differ in tasks, images or dependencies")
    for t in tasks:
        for plain in (floor.task_dict[t.task_id], factory.task_dict[t.task_id]):
            if (plain.command, plain.environment) != (t.command, t.environment):
                raise AssertionError(f"{t.task_id}: a plain build differs in command or environment")


def _in_child(fn: Callable[[], Any]) -> float:
    """Seconds ``fn`` takes in a forked child, timed there: how the DAG processor runs a parse."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            start = time.perf_counter()
            fn()
            os.write(write, struct.pack("d", time.perf_counter() - start))
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    if len(data) != 8:
        raise RuntimeError("a forked child failed")
    return struct.unpack("d", data)[0]


def _forked(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each, forked in turns, this process's objects frozen out of the collector
    as the DAG processor's manager does before it forks."""
    gc.collect()
    gc.freeze()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_in_child(fn))
    gc.unfreeze()
    return {name: statistics.median(t) for name, t in times.items()}


def _write_others(path: Path, floor_file: Path, factory_file: Path) -> None:
    tasks = plain_tasks(path)
    floor_file.write_text(floor_source(tasks))
    factory_file.write_text(yaml.safe_dump(dag_factory_config(tasks), sort_keys=False))


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms"


def run(opts: Options) -> dict[str, float]:
    bench_only(DAG_FACTORY, "dagfactory")
    _environ(opts.workdir)
    path = write_valohai_yaml(opts.workdir / "project")
    floor_file = opts.workdir / "hand_written_dag.py"
    factory_dir = opts.workdir / "dag-factory"
    factory_dir.mkdir()
    factory_file = factory_dir / f"{PIPELINE}.yaml"
    # Written in a child, so that this process holds what the DAG processor's manager holds when it
    # forks a parse: Airflow and the airflow.* modules DAG files import, none of the builds' own.
    _in_child(lambda: _write_others(path, floor_file, factory_file))
    import airflow.providers.docker.operators.docker
    import airflow.sdk  # noqa: F401

    floor_code = compile(floor_file.read_text(), str(floor_file), "exec")

    def floor() -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": "hand_written_dag"}
        exec(floor_code, namespace)
        return namespace

    def ours_fresh() -> None:
        from airflow_valohai_reuse.factory.factory import build_dags

        build_dags(path)

    def factory(namespace: dict[str, Any] | None = None) -> dict[str, Any]:
        import dagfactory

        namespace = {} if namespace is None else namespace
        dagfactory.load_yaml_dags(
            globals_dict=namespace, config_filepath=str(factory_file), defaults_config_path=str(factory_dir)
        )
        return namespace

    fresh = _forked({"ours": ours_fresh, "floor": floor, "factory": factory}, opts.repeats(25, 6))
    print(
        f"build: per parse in a forked child, imports included: build_dags {_ms(fresh['ours'])}, "
        f"hand-written {_ms(fresh['floor'])}, dag-factory {_ms(fresh['factory'])}; "
        f"ratios {fresh['ours'] / fresh['floor']:.2f} and {fresh['ours'] / fresh['factory']:.2f}",
        file=sys.stderr,
    )

    from valohai_yaml.validation import get_validator

    from airflow_valohai_reuse.factory.factory import build_dags
    from airflow_valohai_reuse.pipeline.pipelinefile import validator

    def ours() -> dict[str, Any]:
        # a parse runs in a fresh process: neither compiled schema is kept
        get_validator.cache_clear()
        validator.cache_clear()
        return build_dags(path)

    _check_same(plain_tasks(path), ours()[PIPELINE], floor()["dag"], factory()[PIPELINE])
    repeats = opts.repeats(100, 20)
    ours_s, floor_s = alternate(ours, floor, repeats)
    ours_s2, factory_s = alternate(ours, factory, repeats)
    print(
        f"build: in this process, modules loaded: build_dags {_ms(ours_s)} / {_ms(ours_s2)}, "
        f"hand-written {_ms(floor_s)}, dag-factory {_ms(factory_s)} (medians of {repeats})",
        file=sys.stderr,
    )
    shutil.rmtree(opts.workdir / "pycache", ignore_errors=True)  # tens of MB of bytecode
    return {
        "build_100_node_vs_python_floor_ratio": ours_s / floor_s,
        "build_vs_dag_factory_ratio": ours_s2 / factory_s,
    }
