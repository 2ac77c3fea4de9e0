"""Values named like secrets never reach what the DAG stores in Airflow's metadata database: its
documentation quotes valohai.yaml with those values masked, and the serialized DAG holds none of them."""

from __future__ import annotations

import json
from pathlib import Path

from airflow_valohai_reuse import build_dags
from airflow_valohai_reuse.pipeline.masked import masked_yaml

PATTERNS = ("*SECRET*", "*PASSWORD*", "*TOKEN*")
SECRETS = ("env-s3cr3t-value", "param-s3cr3t-value", "override-s3cr3t-value", "rule-s3cr3t-value")

PIPELINE = """\
# the step reads a token from its environment
- step:
    name: fetch
    image: valohai-reuse-example:busybox
    command: echo "$MY_API_TOKEN" > /valohai/outputs/out.txt
    parameters:
      - name: db_password
        type: string
        default: param-s3cr3t-value
      - name: rows
        type: integer
        default: 3
    environment-variables:
      - name: MY_API_TOKEN   # a comment stays
        default: env-s3cr3t-value
      - name: PLAIN
        default: plain-value
- pipeline:
    name: secrets
    nodes:
      - name: fetch
        type: execution
        step: fetch
        override:
          environment-variables:
            - {name: SERVICE_TOKEN, default: override-s3cr3t-value}
    edges: []
"""


def _dag(tmp_path: Path):
    (tmp_path / "valohai.yaml").write_text(PIPELINE)
    return build_dags(tmp_path / "valohai.yaml")["secrets"]


def test_the_dags_documentation_masks_secret_values_and_keeps_the_rest(tmp_path):
    doc = _dag(tmp_path).doc_md
    assert not [s for s in SECRETS if s in doc]
    assert doc.count('"***"') == 3
    # what is not a secret's value is quoted as written
    assert "default: plain-value" in doc and "default: 3" in doc
    assert "- name: MY_API_TOKEN   # a comment stays" in doc


def test_the_serialized_dag_holds_no_secret_value(tmp_path):
    from airflow.serialization.serialized_objects import DagSerialization

    stored = json.dumps(DagSerialization.to_dict(_dag(tmp_path)))
    assert not [s for s in SECRETS if s in stored]
    assert "plain-value" in stored  # the documentation is there, with what may be shown


def test_masked_yaml_masks_lists_rules_and_secret_keys_and_leaves_other_text_alone():
    text = (
        "- task:\n    name: sweep\n    parameters:\n      - name: api_token\n        style: multiple\n"
        "        rules: {items: [rule-s3cr3t-value, two]}\n- step:\n    name: s\n    environment:\n"
        "      APP_SECRET: param-s3cr3t-value\n"
    )
    masked = masked_yaml(text, PATTERNS)
    assert masked is not None and not [s for s in SECRETS if s in masked]
    assert "style: multiple" in masked and "rules: {items: [" in masked
    plain = "- step:\n    name: s\n    image: busybox\n"
    assert masked_yaml(plain, PATTERNS) is plain
    assert masked_yaml("- name: MY_TOKEN\n  default: [unclosed\n", PATTERNS) is None
