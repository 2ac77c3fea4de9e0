"""A Docker image's content identity, the ``image`` fingerprint component, for runs and plans alike."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def image_identity(client: Any, image: str, logger: logging.Logger = log) -> str:
    """The image ID the daemon reports (a moved tag is a change), pulling the image if it is absent.

    ``client``: a docker ``APIClient``.
    """
    from docker.errors import ImageNotFound

    try:
        return client.inspect_image(image)["Id"]
    except ImageNotFound:
        logger.info("pulling %s to learn its content identity", image)
        client.pull(image)
        return client.inspect_image(image)["Id"]


def identity(
    docker_url: str | None, image: str, full: Callable[[], Any], logger: logging.Logger = log
) -> str:
    """:func:`image_identity` on the daemon at ``docker_url`` (``$DOCKER_HOST`` or the local socket
    when not set, as the DockerOperator chooses): what every node asks before deciding.

    An image that is there is inspected through a client that speaks the oldest API docker-py
    supports, which current daemons serve, so making it costs no request; the negotiated client of
    the Docker provider's hook (``full``) first asks ``/version`` and pings, about 10 ms of a reused
    node's budget. ``full`` is used where the image must be pulled (registry login is the hook's)
    or the daemon refuses that API version.
    """
    import docker
    from docker.constants import MINIMUM_DOCKER_API_VERSION
    from docker.errors import APIError, ImageNotFound

    url = docker_url or os.environ.get("DOCKER_HOST") or "unix://var/run/docker.sock"
    try:
        return docker.APIClient(base_url=url, version=MINIMUM_DOCKER_API_VERSION).inspect_image(image)["Id"]
    except ImageNotFound:
        pass
    except APIError as exc:
        if exc.status_code != 400 or "version" not in str(exc).lower():
            raise
    return image_identity(full(), image, logger)


def hook_client(docker_url: str | None) -> Any:
    """The Docker provider's client for ``docker_url``, as a DockerOperator's hook makes it."""
    from airflow.providers.docker.hooks.docker import DockerHook

    url = docker_url or os.environ.get("DOCKER_HOST") or "unix://var/run/docker.sock"
    return DockerHook(docker_conn_id=None, base_url=url).api_client
