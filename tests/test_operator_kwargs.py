"""``build_dags(operator_kwargs=…)``: Airflow's task arguments reach every node task; what valohai.yaml
decides is refused by name, never silently overwritten when the node runs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from airflow_valohai_reuse import build_dags

BASIC = Path(__file__).resolve().parent / "pipelines" / "basic" / "valohai.yaml"


def test_task_arguments_reach_every_node_task():
    given = {"queue": "gpu", "retries": 2, "retry_delay": timedelta(seconds=5), "network_mode": "none"}
    dag = build_dags(BASIC, operator_kwargs=given)["basic"]
    for task in dag.tasks:
        assert (task.queue, task.retries, task.retry_delay) == ("gpu", 2, timedelta(seconds=5))
        assert task.network_mode == "none"


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("environment", {"SEED": "1"}, "the step's environment-variables in valohai.yaml"),
        ("command", ["echo other"], "the step's command in valohai.yaml"),
        ("image", "busybox:other", "the step's image in valohai.yaml"),
        ("entrypoint", ["/bin/bash", "-c"], "in one shell as on Valohai"),
        ("mounts", [], "the /valohai tree"),
        ("force_pull", True, "the image the fingerprint identified"),
        ("task_id", "x", "set from the pipeline's node"),
    ],
)
def test_what_valohai_yaml_decides_is_refused_by_name(key, value, words):
    with pytest.raises(TypeError) as caught:
        build_dags(BASIC, operator_kwargs={"queue": "gpu", key: value})
    assert f"operator_kwargs cannot set {key!r}" in str(caught.value)
    assert words in str(caught.value)
