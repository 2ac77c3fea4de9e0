"""Execution metadata (JSON objects a step prints on lines of their own) and output properties
(``<file>.metadata.json`` sidecars, ``valohai.metadata.jsonl``), as Valohai reads them: parsing, the
bounded series, what is recorded and published, and that a reused node keeps them. The fast tests
parse and store; the slow ones run a real container twice."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.schema import SCHEMA_VERSION
from airflow_valohai_reuse.contracts import Execution, Kind, Output, Published
from airflow_valohai_reuse.plugins import display
from airflow_valohai_reuse.runtime.outputs import MAX_POINTS, collect_outputs, parse_metadata, read_metadata
from airflow_valohai_reuse.stores.local import LocalStore

PROJECT = Path(__file__).resolve().parent / "pipelines" / "metadata"


def _logger_batch(batch: dict) -> str:
    """What valohai-utils' ``metadata.logger().flush()`` prints: a newline, then the JSON object."""
    return f"\n{json.dumps(batch, default=str)}"


def test_printed_objects_give_last_values_and_series():
    lines = []
    for epoch in range(5):
        lines.extend(_logger_batch({"epoch": epoch, "loss": 1.0 / (epoch + 1)}).split("\n"))
        lines.append(f"epoch {epoch} done")
    lines.append(json.dumps({"accuracy": 0.9, "model": "tree"}))
    found = read_metadata(lines)
    assert found.last == {"epoch": 4, "loss": 0.2, "accuracy": 0.9, "model": "tree"}
    assert found.series == {"epoch": [0, 1, 2, 3, 4], "loss": [1.0, 0.5, 1 / 3, 0.25, 0.2]}
    assert parse_metadata(lines) == found.last  # what actions and metadata edges read


def test_lines_that_are_not_one_json_object_are_ignored():
    lines = [
        '{"loss": 0.5}',
        "INFO {not json}",
        '2026-01-01 12:00:00 {"loss": 9}',  # a log prefix: not a line of its own
        '[{"loss": 8}]',
        '{"loss": NaN}',  # not JSON: it could not be published either
        '{"loss": Infinity, "other": 1}',
        '"{\\"loss\\": 7}"',
        '{"loss": 0.25',
        b'{"bytes": 1}',
        '   {"loss": 0.125}   ',
    ]
    found = read_metadata(lines)
    assert found.last == {"loss": 0.125, "bytes": 1}
    assert found.series == {"loss": [0.5, 0.125]}


def test_a_long_series_is_thinned_to_the_bound_keeping_first_and_last():
    count = 25_000
    found = read_metadata(json.dumps({"step": i, "loss": count - i}) for i in range(count))
    steps = found.series["step"]
    assert len(steps) == MAX_POINTS
    assert steps[0] == 0 and steps[-1] == count - 1 and found.last["step"] == count - 1
    assert steps == sorted(steps) and len(set(steps)) == MAX_POINTS
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    assert max(gaps) <= 4 * count / MAX_POINTS  # spread over the whole run, not its start or end
    small = read_metadata((json.dumps({"k": i}) for i in range(10)), max_points=4)
    assert small.series["k"][0] == 0 and small.series["k"][-1] == 9 and len(small.series["k"]) == 4


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def test_sidecars_and_the_jsonl_file_become_properties_not_outputs(tmp_path, caplog):
    outputs = tmp_path / "outputs"
    _write(
        outputs,
        {
            "model.pkl": b"\x00model",
            "model.pkl.metadata.json": json.dumps({"valohai.tags": ["prod"], "accuracy": 0.5}),
            "plots/loss.png": b"png",
            "report.txt": "hello\n",
            "valohai.metadata.jsonl": "\n".join(
                [
                    json.dumps({"file": "model.pkl", "metadata": {"accuracy": 0.75, "rows": 10}}),
                    json.dumps({"file": "plots/loss.png", "metadata": {"kind": "plot"}}),
                    "not json",
                    json.dumps({"file": "missing.txt", "metadata": {"x": 1}}),
                    json.dumps({"metadata": {"no": "file"}}),
                    json.dumps({"file": "report.txt", "metadata": "not an object"}),
                    json.dumps({"file": "/valohai/outputs/report.txt", "metadata": {"lines": 1}}),
                ]
            ),
            "broken.csv.metadata.json": "{broken",
            "broken.csv": "a,b\n",
            "orphan.bin.metadata.json": json.dumps({"x": 1}),
            "sub/valohai.metadata.jsonl": '{"file": "report.txt", "metadata": {"nested": true}}\n',
        },
    )
    store = LocalStore(tmp_path / "store")
    with caplog.at_level(logging.WARNING):
        collected = {o.name: o for o in collect_outputs(outputs, store)}
    # only the outputs root's jsonl file is the properties file; a sidecar is one wherever it is
    assert sorted(collected) == [
        "broken.csv",
        "model.pkl",
        "plots/loss.png",
        "report.txt",
        "sub/valohai.metadata.jsonl",
    ]
    # the sidecar first, then the jsonl line, key by key
    assert collected["model.pkl"].properties == {"valohai.tags": ["prod"], "accuracy": 0.75, "rows": 10}
    assert collected["plots/loss.png"].properties == {"kind": "plot"}
    assert collected["report.txt"].properties == {"lines": 1}
    assert collected["broken.csv"].properties == {}
    warned = caplog.text
    assert "broken.csv.metadata.json is not a JSON object" in warned
    assert "missing.txt, which the step did not write" in warned
    assert "orphan.bin, which the step did not write" in warned
    assert "3 line(s) are not" in warned


def test_a_linked_properties_file_is_not_followed(tmp_path, caplog):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"password": "hunter2"}))
    outputs = tmp_path / "outputs"
    _write(outputs, {"data.txt": "x"})
    (outputs / "data.txt.metadata.json").symlink_to(secret)
    (outputs / "valohai.metadata.jsonl").symlink_to(secret)
    with caplog.at_level(logging.WARNING):
        collected = collect_outputs(outputs, LocalStore(tmp_path / "store"))
    assert [(o.name, o.properties) for o in collected] == [("data.txt", {})]
    assert "hunter2" not in caplog.text


def test_properties_travel_in_the_xcom_and_old_xcoms_still_read():
    with_props = Output("m.pkl", "file:///s/1", 3, "a" * 64, {"accuracy": 0.5})
    plain = Output("d.csv", "file:///s/2", 4, "b" * 64)
    assert plain.as_dict() == {"name": "d.csv", "uri": "file:///s/2", "size": 4, "checksum": "b" * 64}
    assert with_props.as_dict()["properties"] == {"accuracy": 0.5}
    assert Output.from_dict(with_props.as_dict()).properties == {"accuracy": 0.5}
    assert Output.from_dict(plain.as_dict()) == plain and Output.from_dict(plain.as_dict()).properties == {}
    assert with_props == Output("m.pkl", "file:///s/1", 3, "a" * 64)  # properties are not its identity
    assert len({with_props, plain}) == 2


def _execution(series: dict) -> Execution:
    return Execution(
        id="e1",
        fingerprint="f" * 64,
        fingerprint_version=3,
        step="train",
        components={},
        outputs=[Output("m.pkl", "file:///s/1", 3, "a" * 64, {"accuracy": 0.5})],
        metadata={"loss": 0.1, "epoch": 2},
        metadata_series=series,
        dag_id="d",
        run_id="r",
        task_id="train",
    )


def test_the_series_and_properties_are_recorded_with_the_execution(tmp_path):
    cache = ExecutionCache(f"sqlite:///{tmp_path / 'cache.db'}")
    cache.record(_execution({"loss": [0.5, 0.3, 0.1], "epoch": [0, 1, 2]}))
    found = cache.lookup("f" * 64)
    assert found is not None
    assert found.metadata == {"loss": 0.1, "epoch": 2}
    assert found.metadata_series == {"loss": [0.5, 0.3, 0.1], "epoch": [0, 1, 2]}
    assert found.outputs[0].properties == {"accuracy": 0.5}
    published = Published.of(found, Kind.REUSED, "train").as_xcom()
    assert published["metadata"] == {"loss": 0.1, "epoch": 2}  # last values only: the XCom stays small
    assert "metadata_series" not in published
    assert published["outputs"][0]["properties"] == {"accuracy": 0.5}


def test_a_version_4_cache_gains_the_series_column_and_keeps_its_entries(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    ExecutionCache(url).record(_execution({}))
    from airflow_valohai_reuse.cache.executions import _engines

    _engines.pop(url).dispose()
    with create_engine(url).begin() as conn:  # as version 4 left it
        conn.execute(text("ALTER TABLE vr_executions DROP COLUMN metadata_series"))
        conn.execute(text("UPDATE vr_schema SET version = 4"))
    cache = ExecutionCache(url)
    with cache.engine.connect() as conn:
        assert conn.execute(text("select version from vr_schema")).scalar() == SCHEMA_VERSION == 5
    found = cache.lookup("f" * 64)
    assert found is not None and found.metadata == {"loss": 0.1, "epoch": 2} and found.metadata_series == {}


def test_pages_show_last_values_and_a_sparkline_of_numeric_series():
    rows = display.metrics(
        {"loss": 0.1234567, "model": "tree", "epoch": 2, "ok": True},
        {"loss": [0.9, 0.5, 0.1234567], "model": ["a", "tree"], "epoch": [0, 1, 2]},
    )
    by_key = {r.key: r for r in rows}
    assert [r.key for r in rows] == ["epoch", "loss", "model", "ok"]
    assert display.metric(by_key["loss"].value) == "0.1235"
    spark = by_key["loss"].spark
    assert spark is not None and spark.count == 3 and len(spark.points.split()) == 3
    ys = [float(p.split(",")[1]) for p in spark.points.split()]
    assert ys[0] < ys[1] < ys[2]  # loss falls: the line goes down (SVG y grows downwards)
    assert by_key["model"].spark is None and by_key["ok"].spark is None  # no numbers, no series
    assert display.metric(True) == "true" and display.metric(123456) == "123,456"
    assert display.metric("x" * 100, 10) == "x" * 9 + "\u2026"
    assert (
        display.summary({"b": 2, "a": 0.5, "c": "x", "d": 1, "e": 2})
        == "a 0.5 \u00b7 b 2 \u00b7 c x \u00b7 d 1 \u00b7 +1 more"
    )


@pytest.mark.slow
def test_a_real_container_s_metadata_and_properties_are_recorded_and_kept_on_reuse(reuse_env, docker_client):
    from harness import copy_project, run

    from airflow_valohai_reuse import build_dags

    project = copy_project(PROJECT, reuse_env / "project")
    dag = build_dags(project / "valohai.yaml")["metrics"]
    first = run(dag, docker_client)
    assert first.state == "success", first.task_states
    train = first.xcoms["train"]
    assert train["reused"] is False
    assert train["metadata"] == {"epoch": 4, "loss": 0.2, "accuracy": 0.9, "note": "done"}
    outputs = {o["name"]: o for o in train["outputs"]}
    assert sorted(outputs) == ["metrics.csv", "model.txt", "plots/curve.txt"]  # no sidecar, no jsonl
    assert outputs["model.txt"]["properties"] == {"valohai.tags": ["candidate"], "accuracy": 0.9, "rows": 5}
    assert outputs["plots/curve.txt"]["properties"] == {"kind": "plot"}
    assert "properties" not in outputs["metrics.csv"]
    # the downstream node got the model alone, and its metadata edge the last accuracy
    report = first.xcoms["report"]
    assert report["parameters"]["threshold"] == 0.9
    assert [f["name"] for f in report["inputs"]["model"]] == ["model.txt"]

    cache = ExecutionCache(f"sqlite:///{reuse_env / 'cache.db'}")
    recorded = cache.get(train["execution_id"])
    assert recorded is not None
    assert recorded.metadata_series == {"epoch": [0, 1, 2, 3, 4], "loss": [1.0, 0.5, 0.33, 0.25, 0.2]}
    stored = {p.read_bytes() for p in (reuse_env / "artifacts").rglob("*") if p.is_file()}
    assert not any(b"candidate" in blob or b'"file"' in blob for blob in stored)  # no properties file kept

    second = run(dag, docker_client)
    assert second.containers_started == 0
    again = second.xcoms["train"]
    assert again["reused"] is True and again["execution_id"] == train["execution_id"]
    assert again["metadata"] == train["metadata"] and again["outputs"] == train["outputs"]
    assert second.xcoms["report"]["reused"] is True
