"""A Docker image's content identity, the ``image`` fingerprint component, for runs and plans alike."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def image_identity(client: Any, image: str, logger: logging.Logger = log) -> str:
    """The image ID the daemon reports (a moved tag is a change), pulling the image if it is absent.

    ``client``: a docker ``APIClient``, as the Docker provider's hook makes it.
    """
    from docker.errors import ImageNotFound

    try:
        return client.inspect_image(image)["Id"]
    except ImageNotFound:
        logger.info("pulling %s to learn its content identity", image)
        client.pull(image)
        return client.inspect_image(image)["Id"]


def docker_client(docker_url: str | None) -> Any:
    """The Docker provider's API client for ``docker_url`` (the local daemon when not set), as the
    operator's hook makes it."""
    import os

    from airflow.providers.docker.hooks.docker import DockerHook

    url = docker_url or os.environ.get("DOCKER_HOST") or "unix://var/run/docker.sock"
    return DockerHook(docker_conn_id=None, base_url=url).api_client
