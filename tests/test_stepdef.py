"""Effective steps: override merge, typed parameter values, the rendered command."""

from __future__ import annotations

import pytest
from valohai_yaml import parse

from airflow_valohai_reuse.errors import ParameterError
from airflow_valohai_reuse.stepdef import effective_step, render_script, resolve_parameters, step_component

CONFIG = parse(
    """
- step:
    name: train
    image: busybox
    description: trains
    command: python train.py {parameters}
    parameters:
      - {name: epochs, type: integer, default: 3}
      - {name: lr, type: float, default: 0.5, pass-as: "--lr {v}"}
      - {name: verbose, type: flag}
      - {name: tag, type: string, optional: true}
      - {name: layers, type: integer, multiple: separate, default: [1, 2]}
    inputs:
      - {name: data, default: s3://bucket/a.csv}
- pipeline:
    name: p
    nodes:
      - name: n
        type: execution
        step: train
        override:
          parameters:
            - {name: epochs, default: 7}
    edges: []
"""
)
STEP = CONFIG.steps["train"]


def test_override_keeps_declared_type_and_pass_as():
    node = CONFIG.pipelines["p"].get_node_by(name="n")
    step = effective_step(STEP, node.override)
    assert step.parameters["epochs"].type == "integer"
    assert step.parameters["epochs"].default == 7
    assert resolve_parameters(step, {})["epochs"] == 7


def test_restated_default_equals_omitted_default():
    assert resolve_parameters(STEP, {}) == resolve_parameters(STEP, {"epochs": 3, "lr": 0.5})


def test_values_are_typed_by_declaration():
    values = resolve_parameters(STEP, {"epochs": "4", "lr": 1, "verbose": "true", "layers": ["3"]})
    assert values == {"epochs": 4, "lr": 1.0, "verbose": True, "layers": [3]}
    assert isinstance(values["lr"], float)


def test_bad_value_names_parameter_and_value():
    with pytest.raises(ParameterError, match="parameter 'epochs' = 'many'"):
        resolve_parameters(STEP, {"epochs": "many"})
    with pytest.raises(ParameterError, match="not a parameter of step 'train'"):
        resolve_parameters(STEP, {"nope": 1})


def test_command_is_rendered_by_valohai_yaml_with_values_quoted():
    script = render_script(STEP, resolve_parameters(STEP, {"tag": "a b; rm -rf /"}))
    assert script.splitlines() == [
        "set -e",
        "python train.py --epochs=3 --lr 0.5 '--tag=a b; rm -rf /' --layers=1,2",
    ]


def test_cosmetic_fields_and_input_uris_are_not_in_the_step_component():
    component = step_component(STEP)
    assert "description" not in component
    assert component["inputs"] == {"data": {"name": "data"}}
    assert "default" not in component["parameters"]["epochs"]


def test_secret_variables_never_enter_the_environment_component():
    from airflow_valohai_reuse.stepdef import DEFAULT_SECRET_PATTERNS, environment_component

    variables = {"MODE": "full", "DB_PASSWORD": "hunter2", "HF_TOKEN": "abc", "my_api_key": "k"}
    component = environment_component(STEP, variables, DEFAULT_SECRET_PATTERNS)
    assert component["variables"] == {"MODE": "full"}
    assert "hunter2" not in str(component)
