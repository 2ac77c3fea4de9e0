"""The pure core: canonical encoding, digests and the words a miss is explained in."""

from __future__ import annotations

import pytest

from airflow_valohai_reuse.fingerprint.canonical import UnencodableValue, canonical_json, digest
from airflow_valohai_reuse.fingerprint.components import FINGERPRINT_VERSION, Fingerprint, describe, diff


def _components(**changes):
    base = {
        "step": {"name": "train", "command": ["python train.py {parameters}"]},
        "code": {"scope": "repository", "files": {"train.py": "a" * 64}},
        "parameters": {"epochs": 3},
        "inputs": {"dataset": {"clean.csv": {"sha256": "1f2e" + "0" * 60}}},
        "image": {"id": "sha256:" + "b" * 64},
        "environment": {"environment": None, "resources": {}, "variables": {}},
    }
    base.update(changes)
    return base


def test_key_order_does_not_change_the_digest():
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'
    assert digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})


def test_unencodable_value_names_its_path():
    with pytest.raises(UnencodableValue, match=r"\$\.params\.x: value of type set"):
        canonical_json({"params": {"x": {1, 2}}})
    with pytest.raises(UnencodableValue, match="non-finite"):
        canonical_json({"x": float("nan")})


def test_every_component_changes_the_digest():
    base = Fingerprint(_components()).digest
    for name, value in [
        ("step", {"name": "train", "command": ["python train2.py"]}),
        ("code", {"scope": "repository", "files": {"train.py": "c" * 64}}),
        ("parameters", {"epochs": 4}),
        ("inputs", {"dataset": {"clean.csv": {"sha256": "9ab0" + "0" * 60}}}),
        ("image", {"id": "sha256:" + "d" * 64}),
        ("environment", {"environment": "gpu", "resources": {}, "variables": {}}),
    ]:
        assert Fingerprint(_components(**{name: value})).digest != base, name


def test_version_is_part_of_the_digest():
    assert (
        Fingerprint(_components()).digest
        != Fingerprint(_components(), version=FINGERPRINT_VERSION + 1).digest
    )


def test_integer_and_float_values_differ():
    assert (
        Fingerprint(_components(parameters={"lr": 1})).digest
        != Fingerprint(_components(parameters={"lr": 1.0})).digest
    )


def test_missing_component_is_refused():
    parts = _components()
    del parts["image"]
    with pytest.raises(ValueError, match="missing"):
        Fingerprint(parts)


def test_diff_explains_in_words():
    old = _components()
    new = _components(
        parameters={"epochs": 4},
        inputs={"dataset": {"clean.csv": {"sha256": "9ab0" + "0" * 60}}},
    )
    words = describe(diff(old, new))
    assert "parameter epochs 3 → 4" in words
    assert "input dataset/clean.csv changed (sha256 1f2e0000… → 9ab00000…)" in words


def test_identical_components_have_no_diff():
    assert diff(_components(), _components()) == []
    assert describe([]) == "no differences"


def test_executable_bit_change_is_a_change_in_words():
    old = _components(code={"files": {"run.sh": "ab" * 32}, "executable": {"run.sh": True}})
    new = _components(code={"files": {"run.sh": "ab" * 32}, "executable": {}})
    assert Fingerprint(old).digest != Fingerprint(new).digest
    assert describe(diff(old, new)) == "code run.sh is no longer executable"
    assert describe(diff(new, old)) == "code run.sh became executable"


def test_file_names_that_are_not_utf8_have_a_distinct_digest():
    import os

    odd = os.fsdecode(b"caf\xe9.txt")
    assert Fingerprint(_components(code={"files": {odd: "1"}})).digest != (
        Fingerprint(_components(code={"files": {"caf\xe9.txt": "1"}})).digest
    )
