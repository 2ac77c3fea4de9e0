"""The one reuse decision, the run ledger and the fail-open cache, on a real SQLite cache and local store."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from airflow_valohai_reuse.cache.executions import ExecutionCache
from airflow_valohai_reuse.cache.failopen import FailOpenCache, NullCache, open_cache
from airflow_valohai_reuse.cache.lease import Flight, Leases, owner_info
from airflow_valohai_reuse.contracts import Entry, Execution, Kind, Output, Published, SourceKind, TaskKey
from airflow_valohai_reuse.fingerprint.components import Fingerprint
from airflow_valohai_reuse.pipeline.spec import EdgeIn, NodeSpec
from airflow_valohai_reuse.reuse.decide import Hit, Miss, Wait, decide
from airflow_valohai_reuse.reuse.resolve import Resolved
from airflow_valohai_reuse.reuse.upstream import read_upstream
from airflow_valohai_reuse.stores.local import LocalStore


def _fingerprint(epochs: int = 3) -> Fingerprint:
    return Fingerprint(
        {
            "step": {"name": "train", "command": ["python train.py"]},
            "code": {"scope": "auto", "files": {"train.py": "a" * 64}, "executable": {}},
            "parameters": {"epochs": epochs},
            "inputs": {},
            "image": {"id": "sha256:" + "b" * 64},
            "environment": {"environment": None, "resources": {}, "variables": {}},
        }
    )


def _resolved(epochs: int = 3) -> Resolved:
    return Resolved(_fingerprint(epochs), {"epochs": epochs}, {}, {})


@pytest.fixture
def cache(tmp_path):
    return FailOpenCache(ExecutionCache(f"sqlite:///{tmp_path / 'cache.db'}"))


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store")


def _output(store: LocalStore, tmp_path: Path, text: str = "model") -> Output:
    import hashlib

    path = tmp_path / f"{uuid.uuid4().hex}.txt"
    path.write_text(text)
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    return Output("model.txt", store.put(path, sha256, len(text)), len(text), sha256)


def _execution(resolved: Resolved, outputs: list[Output], run_id: str = "r1") -> Execution:
    fingerprint = resolved.fingerprint
    return Execution(
        id=str(uuid.uuid4()),
        fingerprint=fingerprint.digest,
        fingerprint_version=fingerprint.version,
        step="train",
        components=dict(fingerprint.components),
        outputs=outputs,
        parameters={"epochs": 3},
        metadata={"loss": 0.5},
        dag_id="d",
        run_id=run_id,
        task_id="train",
        duration_s=3.0,
    )


def _decide(resolved, cache, store, reuse=True, flight=None):
    return decide(resolved, step="train", reuse=reuse, cache=cache, store=store, flight=flight)


def test_no_entry_is_a_miss_then_a_recorded_one_is_a_hit(cache, store, tmp_path):
    resolved = _resolved()
    first = _decide(resolved, cache, store)
    assert first == Miss("no earlier successful execution of step 'train'")
    execution = _execution(resolved, [_output(store, tmp_path)])
    assert cache.record(execution)
    found = _decide(resolved, cache, store)
    assert isinstance(found, Hit) and found.execution.id == execution.id
    assert found.execution.outputs == execution.outputs
    assert found.execution.metadata == {"loss": 0.5}


def test_a_changed_parameter_is_a_miss_that_says_what_changed(cache, store, tmp_path):
    cache.record(_execution(_resolved(3), [_output(store, tmp_path)]))
    found = _decide(_resolved(4), cache, store)
    assert isinstance(found, Miss) and found.reason == "parameter epochs 3 → 4"
    assert found.nearest is not None and found.nearest.fingerprint == _fingerprint(3).digest


def test_an_entry_whose_output_is_gone_is_not_reused(cache, store, tmp_path, caplog):
    output = _output(store, tmp_path)
    cache.record(_execution(_resolved(), [output]))
    store.delete(output.uri)
    with caplog.at_level(logging.WARNING):
        found = _decide(_resolved(), cache, store)
    assert isinstance(found, Miss)
    assert "outputs missing or changed in the store: model.txt" in caplog.text


def test_reuse_off_is_a_miss_even_with_an_entry(cache, store, tmp_path):
    cache.record(_execution(_resolved(), [_output(store, tmp_path)]))
    assert _decide(_resolved(), cache, store, reuse=False) == Miss("reuse_executions is off")


def test_a_run_claims_the_lease_and_a_second_one_waits_as_a_plan_predicts(cache, store):
    resolved = _resolved()
    owner = owner_info(TaskKey("d", "r1", "train"))
    first = Flight(cache.leases(60), resolved.fingerprint.digest, owner=owner)
    assert isinstance(_decide(resolved, cache, store, flight=first), Miss) and first.claimed
    second = Flight(cache.leases(60), resolved.fingerprint.digest, owner=replace(owner, run_id="r2"))
    waiting = _decide(resolved, cache, store, flight=second)
    predicted = _decide(resolved, cache, store)  # a plan: looks at the lease, claims nothing
    assert isinstance(waiting, Wait) and isinstance(predicted, Wait)
    assert waiting.holder.owner.run_id == predicted.holder.owner.run_id == "r1"
    with first:
        pass  # leaving the flight releases the lease
    assert isinstance(_decide(resolved, cache, store), Miss)
    assert Leases(cache.cache.engine, 60).current(resolved.fingerprint.digest) is None


def test_a_hit_found_after_the_claim_releases_the_lease(cache, store, tmp_path):
    resolved = _resolved()
    flight = Flight(cache.leases(60), resolved.fingerprint.digest)
    assert flight.claim() is None and flight.claimed
    cache.record(_execution(resolved, [_output(store, tmp_path)]))
    again = Flight(cache.leases(60), resolved.fingerprint.digest)
    with flight:
        pass
    assert isinstance(_decide(resolved, cache, store, flight=again), Hit) and not again.claimed


def test_the_ledger_row_is_written_with_the_record_and_replaced_by_a_new_try(cache, store, tmp_path):
    execution = _execution(_resolved(), [_output(store, tmp_path)])
    key = TaskKey("d", "r1", "train")
    published = Published.of(execution, Kind.RAN, "train")
    assert cache.record(execution, Entry(key, published, try_number=1))
    assert cache.published("d", "r1", ["train", "other"]) == {"train": [published]}
    cache.forget(key)
    assert cache.published("d", "r1", ["train"]) == {}
    reused = Published.of(execution, Kind.REUSED, "train")
    cache.publish(Entry(key, reused, try_number=2))
    cache.publish(Entry(key, reused, try_number=3))
    rows = sqlite3.connect(tmp_path / "cache.db").execute("select kind, try_number from vr_ledger").fetchall()
    assert rows == [("reused", 3)]
    assert cache.published("d", "r1", ["train"])["train"][0].as_xcom()["reused_from"] == execution.id


def test_downstream_reads_the_ledger_in_one_query_and_xcom_only_for_what_it_lacks(cache, store, tmp_path):
    execution = _execution(_resolved(), [_output(store, tmp_path)])
    cache.record(execution, Entry(TaskKey("d", "r1", "train"), Published.of(execution, Kind.RAN, "train")))
    node = NodeSpec(
        pipeline="p",
        node="evaluate",
        step=None,
        repository=tmp_path,
        source_file="valohai.yaml",
        inputs_from_edges=(
            EdgeIn("train", "train", SourceKind.OUTPUT, "*", "model"),
            EdgeIn("prepare", "prepare", SourceKind.OUTPUT, "*", "data"),
            EdgeIn("sweep", "sweep", SourceKind.OUTPUT, "*", "more"),
        ),
    )
    pulled: list[str] = []

    def pull(task_id):
        pulled.append(task_id)
        value = {"execution_id": task_id, "outputs": [], "inputs": {}}
        return [value] if task_id == "sweep" else value

    found = read_upstream(node, cache=cache, dag_id="d", run_id="r1", mapped={"sweep"}, pull=pull)
    assert found["train"].execution_ids == (execution.id,)
    assert found["train"].outputs[0].name == "model.txt"
    assert found["sweep"].execution_ids == ("sweep",)
    assert sorted(pulled) == ["prepare", "sweep"]  # no ledger row; a task node's variants


def test_a_cache_that_fails_warns_once_and_then_answers_like_no_cache(cache, store, tmp_path, caplog):
    execution = _execution(_resolved(), [_output(store, tmp_path)])
    with sqlite3.connect(tmp_path / "cache.db") as db:
        db.execute("drop table vr_executions")
    with caplog.at_level(logging.WARNING):
        assert cache.lookup(execution.fingerprint) is None
        assert cache.record(execution) is False
        assert cache.nearest("train") is None
        assert cache.leases(60) is None
        assert cache.published("d", "r1", ["train"]) is None
    warnings = [r for r in caplog.records if "execution cache unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "while looking up an execution" in warnings[0].getMessage()


def test_a_cache_that_cannot_be_opened_is_a_null_cache_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        found = open_cache(f"sqlite:///{tmp_path / 'no-such-folder' / 'cache.db'}")
    assert isinstance(found, NullCache) and not isinstance(found, FailOpenCache)
    assert "execution cache unavailable" in caplog.text
    assert found.lookup("x") is None and found.record(_execution(_resolved(), [])) is False
