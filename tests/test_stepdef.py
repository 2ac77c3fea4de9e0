"""Effective steps: override merge, typed parameter values, the rendered command."""

from __future__ import annotations

import pytest
from valohai_yaml import parse

from airflow_valohai_reuse.errors import ParameterError
from airflow_valohai_reuse.pipeline.stepdef import (
    effective_step,
    render_script,
    resolve_parameters,
    step_component,
)

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


def test_a_refused_value_of_a_secret_named_parameter_is_not_quoted():
    from airflow_valohai_reuse.pipeline.stepdef import DEFAULT_SECRET_PATTERNS

    step = parse(
        "- step:\n    name: s\n    image: busybox\n    command: run\n"
        "    parameters:\n      - {name: api_token, type: integer, default: 1}\n"
    ).steps["s"]
    with pytest.raises(ParameterError) as refused:
        resolve_parameters(step, {"api_token": "hunter2-not-a-number"}, DEFAULT_SECRET_PATTERNS)
    assert "hunter2" not in str(refused.value) and "api_token" in str(refused.value)
    # the same value of a parameter named otherwise is quoted, as any bad value is
    with pytest.raises(ParameterError, match="hunter2-not-a-number"):
        resolve_parameters(step, {"api_token": "hunter2-not-a-number"})


def test_command_is_rendered_by_valohai_yaml_with_values_quoted():
    script = render_script(STEP, resolve_parameters(STEP, {"tag": "a b; rm -rf /"}))
    assert script.splitlines() == [
        "python train.py --epochs=3 --lr 0.5 '--tag=a b; rm -rf /' --layers=1,2",
    ]


def test_cosmetic_fields_and_input_uris_are_not_in_the_step_component():
    component = step_component(STEP)
    assert "description" not in component
    assert component["inputs"] == {"data": {"name": "data"}}
    assert "default" not in component["parameters"]["epochs"]


def test_secret_variables_never_enter_the_environment_component():
    from airflow_valohai_reuse.pipeline.stepdef import DEFAULT_SECRET_PATTERNS, environment_component

    variables = {"MODE": "full", "DB_PASSWORD": "hunter2", "HF_TOKEN": "abc", "my_api_key": "k"}
    component = environment_component(STEP, variables, DEFAULT_SECRET_PATTERNS)
    assert component["variables"] == {"MODE": "full"}
    assert "hunter2" not in str(component)


def _two_positional(command: str, order: tuple[str, str]):
    params = {
        "first": '{name: first, type: string, default: x, pass-as: "{v}"}',
        "second": '{name: second, type: string, default: y, pass-as: "{v}", description: d}',
    }
    lines = "\n".join(f"      - {params[name]}" for name in order)
    text = f"- step:\n    name: s\n    image: i\n    command: {command}\n    parameters:\n{lines}\n"
    return parse(text).steps["s"]


def test_declaration_order_counts_where_the_command_renders_all_parameters():
    ab, ba = (
        _two_positional("echo {parameters}", order) for order in (("first", "second"), ("second", "first"))
    )
    assert render_script(ab, {"first": "x", "second": "y"}) != render_script(
        ba, {"first": "x", "second": "y"}
    )
    assert step_component(ab) != step_component(ba)
    assert step_component(ab)["parameter-order"] == ["first", "second"]


def test_declaration_order_does_not_count_where_parameters_are_named():
    command = "echo {parameter:second} {parameter:first}"
    ab, ba = (_two_positional(command, order) for order in (("first", "second"), ("second", "first")))
    assert render_script(ab, {"first": "x", "second": "y"}) == render_script(
        ba, {"first": "x", "second": "y"}
    )
    assert step_component(ab) == step_component(ba)


def test_secret_named_parameter_enters_the_fingerprint_as_a_salted_hash():
    from airflow_valohai_reuse.pipeline.stepdef import (
        DEFAULT_SECRET_PATTERNS,
        parameters_component,
        public_values,
    )

    values = {"user": "alice", "db_password": "hunter2"}
    component = parameters_component(values, DEFAULT_SECRET_PATTERNS)
    assert component["user"] == "alice"
    assert set(component["db_password"]) == {"secret-sha256"}
    assert "hunter2" not in repr(component)
    rotated = parameters_component({**values, "db_password": "hunter3"}, DEFAULT_SECRET_PATTERNS)
    assert rotated["db_password"] != component["db_password"]
    assert public_values(values, DEFAULT_SECRET_PATTERNS) == {"user": "alice"}


def test_secret_variables_enter_the_environment_only_where_the_step_opts_in():
    from airflow_valohai_reuse.pipeline.stepdef import DEFAULT_SECRET_PATTERNS, environment_component

    variables = {"MODE": "fast", "API_TOKEN": "t0k3n"}
    plain = environment_component(STEP, variables, DEFAULT_SECRET_PATTERNS)
    assert plain["variables"] == {"MODE": "fast"} and "secrets-sha256" not in plain
    opted = environment_component(STEP, variables, DEFAULT_SECRET_PATTERNS, ["API_TOKEN"])
    assert set(opted["secrets-sha256"]) == {"API_TOKEN"}
    assert "t0k3n" not in repr(opted)
    rotated = environment_component(
        STEP, {**variables, "API_TOKEN": "other"}, DEFAULT_SECRET_PATTERNS, ["API_TOKEN"]
    )
    assert rotated != opted
