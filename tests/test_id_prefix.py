"""Short execution ids, as the pages show them, wherever an id is accepted: one lookup in the cache layer
(cache/ids.py) behind ``reuse_nodes``, ``valohai-reuse explain`` and ``invalidate`` and the execution
page's URL. Real SQLite cache; the page's URL is checked against a real API server in
test_conf_refused.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.ids import ExecutionIdError, resolve
from airflow_valohai_reuse.contracts import Execution, Output
from airflow_valohai_reuse.errors import ManualReuseError
from airflow_valohai_reuse.pipeline.analysis import analyses
from airflow_valohai_reuse.pipeline.specs import pipeline_spec
from airflow_valohai_reuse.reuse.pins import check_pins

BASIC = Path(__file__).resolve().parent / "pipelines" / "basic" / "valohai.yaml"
FIT_A = "0a1b2c3d-1111-4000-8000-000000000001"
FIT_B = "0a1b2c3d-2222-4000-8000-000000000002"
PREP = "ffeeddcc-3333-4000-8000-000000000003"


def _execution(eid: str, step: str, output: str) -> Execution:
    return Execution(
        id=eid,
        fingerprint=eid.replace("-", "").ljust(64, "0"),
        fingerprint_version=1,
        step=step,
        components={"code": {"scope": "auto", "files": {}}, "parameters": {}},
        outputs=[Output(output, f"file:///{output}", 1, "0" * 64)],
        pipeline="basic",
        node=step,
        dag_id="basic",
        run_id="first",
        task_id=step,
        finished_at=datetime.now(UTC),
        duration_s=1.0,
    )


@pytest.fixture
def cache(tmp_path):
    cache = ExecutionCache(f"sqlite:///{tmp_path / 'cache.db'}")
    for eid, step, output in (
        (FIT_A, "fit", "model.bin"),
        (FIT_B, "fit", "model.bin"),
        (PREP, "prepare", "data/a"),
    ):
        cache.record(_execution(eid, step, output))
    return cache


def test_a_unique_prefix_of_eight_or_more_names_its_execution(cache):
    with cache.engine.connect() as conn:
        assert resolve(conn, FIT_A) == FIT_A
        assert resolve(conn, "ffeeddcc") == PREP
        assert resolve(conn, "0a1b2c3d-2") == FIT_B
        assert resolve(conn, "FFEEDDCC") == PREP  # as a user may paste it
        with pytest.raises(ExecutionIdError, match=f"'0a1b2c3d' is ambiguous: it starts {FIT_A}, {FIT_B}"):
            resolve(conn, "0a1b2c3d")
        with pytest.raises(ExecutionIdError, match="a short id needs at least 8 characters"):
            resolve(conn, "ffeedd")
        with pytest.raises(ExecutionIdError, match=r"^no successful execution with id '12345678'$"):
            resolve(conn, "12345678")
        with pytest.raises(ExecutionIdError, match=r"^no successful execution with id"):
            resolve(conn, "ffeeddc%")  # LIKE's wildcards are plain characters here
        # an execution of a DAG the reader may not read is not found by its prefix
        with pytest.raises(ExecutionIdError, match=r"^no successful execution with id"):
            resolve(conn, "ffeeddcc", dag_ids=["other"])


def test_reuse_nodes_takes_a_short_id_and_refuses_an_ambiguous_one(cache):
    spec = pipeline_spec(dict(analyses(BASIC, None, "", None))["basic"])
    pins = check_pins({"prepare": "ffeeddcc", "fit": "0a1b2c3d-1"}, spec, cache, dag_id="basic")
    assert {node: e.id for node, e in pins.items()} == {"prepare": PREP, "fit": FIT_A}
    with pytest.raises(ManualReuseError) as refused:
        check_pins({"fit": "0a1b2c3d"}, spec, cache, dag_id="basic")
    assert refused.value.problems["fit"].startswith(
        "reuse_nodes: node 'fit': execution id '0a1b2c3d' is ambig"
    )
    assert FIT_A in refused.value.problems["fit"] and FIT_B in refused.value.problems["fit"]


def test_explain_and_invalidate_take_a_short_id(cache, monkeypatch, capsys):
    from airflow_valohai_reuse import cli

    monkeypatch.setenv("AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN", cache.url)
    assert cli.main(["explain", "ffeeddcc", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["execution_id"] == PREP
    assert cli.main(["explain", "0a1b2c3d"]) == 2
    assert f"is ambiguous: it starts {FIT_A}, {FIT_B}" in capsys.readouterr().err
    assert cli.main(["explain", "0a1b"]) == 2
    assert "a short id needs at least 8 characters" in capsys.readouterr().err
    assert cli.main(["invalidate", "--execution", "0a1b2c3d-2", "--reason", "bad", "--by", "me"]) == 0
    assert "invalidated 1 execution(s)" in capsys.readouterr().out
    assert cache.get(FIT_B) is None and cache.get(FIT_A) is not None
