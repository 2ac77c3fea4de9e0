"""An execution with many outputs is published by reference: its XCom and run-ledger row name the
execution, the count and a checksum of its output list, which the cache database holds once; every
reader (the ledger, an upstream's XCom, a task node's variants) gets the exact list back, and one that
cannot gets an error naming the execution. The fast tests use a real SQLite cache; the slow one runs
a real pipeline whose downstream node receives 150 upstream outputs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.failopen import FailOpenCache, NullCache
from airflow_valohai_reuse.contracts import (
    INLINE_OUTPUTS,
    MANIFEST_KEY,
    Entry,
    Execution,
    Kind,
    Output,
    Published,
    SourceKind,
    TaskKey,
)
from airflow_valohai_reuse.errors import OutputError
from airflow_valohai_reuse.pipeline.spec import EdgeIn, NodeSpec
from airflow_valohai_reuse.reuse.upstream import read_upstream

MANY = INLINE_OUTPUTS + 50


def _execution(count: int) -> Execution:
    outputs = [Output(f"shards/{i}.txt", f"file:///store/{i:064d}", i + 1, f"{i:064x}") for i in range(count)]
    outputs[3] = Output("shards/3.txt", "file:///store/3", 4, "c" * 64, {"split": "train"})
    return Execution(str(uuid.uuid4()), uuid.uuid4().hex * 2, 3, "produce", {}, outputs)


@pytest.fixture
def cache(tmp_path):
    return FailOpenCache(ExecutionCache(f"sqlite:///{tmp_path / 'cache.db'}"))


def _node() -> NodeSpec:
    """A downstream node reading all of upstream ``produce``'s outputs."""
    edge = EdgeIn("produce", "produce", SourceKind.OUTPUT, "*", "shards")
    return NodeSpec(
        pipeline="p",
        node="count",
        step=None,
        repository=Path("."),
        source_file="valohai.yaml",
        inputs_from_edges=(edge,),
    )


def test_many_outputs_of_a_recorded_execution_are_referenced_and_few_are_listed():
    many, few = _execution(MANY), _execution(INLINE_OUTPUTS)
    value = Published.of(many, Kind.REUSED, "produce").as_xcom(recorded=True)
    assert "outputs" not in value
    assert value[MANIFEST_KEY]["execution_id"] == many.id and value[MANIFEST_KEY]["count"] == MANY
    assert len(json.dumps(value)) < 1000
    listed = Published.of(many, Kind.RAN, "produce").as_xcom(recorded=False)  # not in the cache: listed
    assert MANIFEST_KEY not in listed and len(listed["outputs"]) == MANY
    assert len(Published.of(few, Kind.REUSED, "p").as_xcom(recorded=True)["outputs"]) == INLINE_OUTPUTS


def test_the_ledger_row_is_small_and_reads_back_every_output_exactly(cache, tmp_path):
    ran, reused = _execution(MANY), _execution(MANY)
    cache.record(ran, Entry(TaskKey("d", "r1", "produce"), Published.of(ran, Kind.RAN, "produce"), 1))
    cache.record(reused)
    cache.publish(Entry(TaskKey("d", "r2", "produce"), Published.of(reused, Kind.REUSED, "produce"), 1))
    with cache.cache.engine.connect() as conn:
        sizes = [len(row[0]) for row in conn.execute(text("SELECT published FROM vr_ledger"))]
    assert len(sizes) == 2 and max(sizes) < 2000, sizes
    for run_id, execution in (("r1", ran), ("r2", reused)):
        (published,) = cache.published("d", run_id, ["produce"])["produce"]
        assert published.outputs == execution.outputs
        assert published.outputs[3].properties == {"split": "train"}


def test_a_downstream_reading_the_xcom_gets_the_outputs_and_one_that_cannot_is_told(cache):
    execution = _execution(MANY)
    cache.record(execution)
    value = Published.of(execution, Kind.REUSED, "produce").as_xcom(recorded=True)
    node = _node()
    task = node.inputs_from_edges[0].source_task

    def upstream(reader, pulled):
        return read_upstream(node, cache=reader, dag_id="d", run_id="r", mapped=set(), pull=lambda _t: pulled)

    # the ledger has no row (written while the cache was unreachable): the XCom, its outputs read back
    assert upstream(cache, value)[task].outputs == execution.outputs
    # a task node's variants, each referencing its outputs
    other = _execution(MANY)
    cache.record(other)
    variants = [value, Published.of(other, Kind.REUSED, "produce").as_xcom(recorded=True)]
    merged = read_upstream(node, cache=cache, dag_id="d", run_id="r", mapped={task}, pull=lambda _t: variants)
    assert merged[task].outputs == [*execution.outputs, *other.outputs]
    with pytest.raises(OutputError, match=f"outputs of execution {execution.id} .* does not hold them"):
        upstream(NullCache(), value)
    forged = {**value, MANIFEST_KEY: {**value[MANIFEST_KEY], "sha256": "0" * 64}}
    with pytest.raises(OutputError, match=f"execution {execution.id} are not the ones published"):
        upstream(cache, forged)


def test_a_referenced_value_cannot_be_read_as_if_it_listed_nothing():
    value = Published.of(_execution(MANY), Kind.REUSED, "produce").as_xcom(recorded=True)
    with pytest.raises(OutputError, match="were not read from the cache database"):
        Published.from_xcom(value)
    from airflow_valohai_reuse.contracts import Upstream

    with pytest.raises(OutputError, match="were not read from the cache database"):
        Upstream.from_xcom(value)


PIPELINE = f"""
- step:
    name: produce
    image: valohai-reuse-example:busybox
    command:
      - mkdir -p /valohai/outputs/shards
      - i=0; while [ $i -lt {MANY} ]; do echo "shard $i" > /valohai/outputs/shards/$i.txt; i=$((i+1)); done
- step:
    name: count
    image: valohai-reuse-example:busybox
    command:
      - n=$(ls /valohai/inputs/shards | wc -l)
      - sum=$(cat /valohai/inputs/shards/* | md5sum | cut -c1-32)
      - echo {{\\"files\\":$n}}
      - echo {{\\"md5\\":\\"$sum\\"}}
    inputs:
      - name: shards
- pipeline:
    name: manifest
    reuse-executions: true
    nodes:
      - name: produce
        type: execution
        step: produce
      - name: count
        type: execution
        step: count
    edges:
      - [produce.output.shards/*, count.input.shards]
"""


@pytest.mark.slow
def test_a_downstream_node_receives_every_referenced_output(reuse_env, docker_client):
    import hashlib

    from harness import run

    from airflow_valohai_reuse import build_dags

    project = reuse_env / "project"
    project.mkdir()
    (project / "valohai.yaml").write_text(PIPELINE)
    first = run(build_dags(project / "valohai.yaml")["manifest"], docker_client)
    assert first.state == "success", first.task_states
    produced = first.xcoms["produce"]
    assert MANIFEST_KEY in produced and produced[MANIFEST_KEY]["count"] == MANY
    counted = first.xcoms["count"]
    everything = "".join(f"shard {i}\n" for i in sorted(range(MANY), key=lambda i: f"{i}.txt"))
    assert counted["metadata"] == {"files": MANY, "md5": hashlib.md5(everything.encode()).hexdigest()}
    assert len(counted["inputs"]["shards"]) == MANY
    again = run(build_dags(project / "valohai.yaml")["manifest"], docker_client)
    assert {t: x["reused"] for t, x in again.xcoms.items()} == {"produce": True, "count": True}
    assert again.xcoms["produce"][MANIFEST_KEY] == produced[MANIFEST_KEY]
    assert again.containers_started == 0
    kept = ExecutionCache(f"sqlite:///{Path(reuse_env) / 'cache.db'}").outputs_of([produced["execution_id"]])
    checksum, listed = kept[produced["execution_id"]]
    assert len(listed) == MANY and checksum == produced[MANIFEST_KEY]["sha256"]
