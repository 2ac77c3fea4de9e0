"""The providers' private parts that airflow_valohai_reuse/internals.py touches are still there and
still do what it relies on; a provider release that changes one fails here, not in a user's run."""

from __future__ import annotations

import inspect

from airflow_valohai_reuse.internals import add_private_environment, botocore_session, s3_hook_class


def test_the_docker_operator_hands_its_private_environment_to_the_container():
    from airflow.providers.docker.operators.docker import DockerOperator

    operator = DockerOperator(task_id="t", image="x", private_environment={"A": "1"})
    add_private_environment(operator, {"B": "2"})
    assert operator._private_environment == {"A": "1", "B": "2"}
    # the container is created with it, and it is kept out of what the operator renders and logs
    assert "self._private_environment" in inspect.getsource(DockerOperator._run_image_with_mounts)
    assert "_private_environment" not in DockerOperator.template_fields


def test_the_s3_hook_s_caller_and_session_are_where_they_were():
    import boto3
    import botocore.loaders
    import botocore.session
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    assert list(inspect.signature(S3Hook._get_caller).parameters) == ["self", "target_function_name"]
    assert "_get_caller" in inspect.getsource(inspect.getmodule(S3Hook.get_client_type))
    session = boto3.session.Session(aws_access_key_id="-", aws_secret_access_key="-", region_name="us-east-1")
    core = botocore_session(session)
    assert isinstance(core, botocore.session.Session)
    assert "data_loader" in inspect.getsource(botocore.session.Session.create_client)  # what clients read
    loader = botocore.loaders.Loader()
    hook = s3_hook_class(loader)(aws_conn_id=None)
    assert hook._get_caller() == "airflow_valohai_reuse"
