"""A Docker image's reference as Docker reads it, its content identity (the ``image`` fingerprint
component, for runs and plans alike), and the name a node's container is started from."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_valohai_reuse.contracts import DEFAULT_DOCKER_URL
from airflow_valohai_reuse.errors import ValohaiReuseError

log = logging.getLogger(__name__)

#: Docker's default registry and the legacy name it rewrites to it (distribution/reference)
DEFAULT_DOMAIN = "docker.io"
_LEGACY_DOMAIN = "index.docker.io"
_IMAGE_ID = re.compile(r"^(sha256:)?[0-9a-f]{64}$")
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.?)+|\[[0-9a-fA-F:.]+\]"
_DOMAIN = re.compile(rf"^(?:{_HOST})(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
#: the repository of the per-execution names that pin a container to the fingerprinted image ID
PIN_REPOSITORY = "valohai-reuse-pinned"


class ImageError(ValohaiReuseError):
    """A step's image cannot be used: its reference is malformed, or it is absent and cannot be pulled."""

    def __init__(self, reference: str, problem: str) -> None:
        self.reference, self.problem = reference, problem
        super().__init__(f"image {reference!r}: {problem}")


@dataclass(frozen=True)
class ImageRef:
    """A reference split as Docker's CLI splits it: ``docker.io/library/x`` and ``x`` are one image."""

    written: str
    domain: str = DEFAULT_DOMAIN
    path: str = ""
    tag: str | None = None
    digest: str | None = None
    image_id: str | None = None

    @property
    def repository(self) -> str:
        """The repository in the short form ``docker images`` lists (``x``, ``owner/x``, ``host:5000/x``)."""
        if self.domain != DEFAULT_DOMAIN:
            return f"{self.domain}/{self.path}"
        return self.path.removeprefix("library/") if self.path.count("/") == 1 else self.path

    @property
    def familiar(self) -> str:
        """The reference as the daemon knows it: the ID, or repository with tag (``latest`` when
        neither a tag nor a digest is given) and digest."""
        if self.image_id:
            return self.image_id
        tag = f":{self.tag}" if self.tag else ("" if self.digest else ":latest")
        return f"{self.repository}{tag}" + (f"@{self.digest}" if self.digest else "")


def parse_reference(reference: str) -> ImageRef:
    """``reference`` normalised as Docker normalises it (distribution/reference's
    ``ParseNormalizedNamed``), or an :class:`ImageError` naming it."""
    text = reference.strip()
    if _IMAGE_ID.match(text):
        return ImageRef(reference, image_id=text if text.startswith("sha256:") else f"sha256:{text}")
    name, _, digest = text.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = name[colon + 1 :] if colon > slash else None
    name = name[:colon] if tag is not None else name
    first, _, rest = name.partition("/")
    if rest and (any(c in first for c in ".:") or first == "localhost" or first.lower() != first):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    domain = DEFAULT_DOMAIN if domain == _LEGACY_DOMAIN else domain
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    _check(reference, domain, path, tag, digest or None)
    return ImageRef(reference, domain, path, tag, digest or None)


def _check(reference: str, domain: str, path: str, tag: str | None, digest: str | None) -> None:
    if path.lower() != path:
        raise ImageError(reference, "is not a valid reference: the repository name must be lowercase")
    if not _PATH.match(path) or not _DOMAIN.match(domain):
        raise ImageError(reference, "is not a valid Docker image reference")
    if tag is not None and not _TAG.match(tag):
        raise ImageError(reference, f"tag {tag!r} is not a valid Docker tag")
    if digest is not None and not _DIGEST.match(digest):
        raise ImageError(reference, f"digest {digest!r} is not a valid digest")


def image_id_with(client: Any, image: str, logger: logging.Logger = log) -> str:
    """The image ID the daemon reports (a moved tag is a change); an absent image is pulled once.

    ``client``: a docker ``APIClient``.
    """
    from docker.errors import ImageNotFound

    ref = parse_reference(image)
    try:
        return client.inspect_image(ref.familiar)["Id"]
    except ImageNotFound:
        pass
    if ref.image_id:
        raise ImageError(image, "no image with this ID is on the Docker daemon (an ID cannot be pulled)")
    _pull(client, ref, logger)
    try:
        return client.inspect_image(ref.familiar)["Id"]
    except ImageNotFound:
        raise ImageError(image, "was pulled but the Docker daemon does not list it") from None


def _pull(client: Any, ref: ImageRef, logger: logging.Logger) -> None:
    from docker.errors import DockerException

    logger.info("image %s is not on the Docker daemon; pulling %s", ref.written, ref.familiar)
    try:
        client.pull(ref.repository, tag=ref.digest or ref.tag or "latest")
    except DockerException as exc:
        reason = getattr(exc, "explanation", None) or str(exc)
        reason = " ".join(str(reason).split())
        # one line naming the reference: the daemon's reason, not the HTTP call around it
        problem = f"is not on the Docker daemon and pulling it failed: {reason}"
        raise ImageError(ref.written, problem) from None


def image_id(
    docker_url: str | None, image: str, full: Callable[[], Any], logger: logging.Logger = log
) -> str:
    """:func:`image_id_with` on the daemon at ``docker_url`` (``$DOCKER_HOST`` or the local socket
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

    ref = parse_reference(image)  # a malformed reference fails here, before the daemon is asked
    url = docker_url or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL
    try:
        client = docker.APIClient(base_url=url, version=MINIMUM_DOCKER_API_VERSION)
        return client.inspect_image(ref.familiar)["Id"]
    except ImageNotFound:
        pass
    except APIError as exc:
        if exc.status_code != 400 or "version" not in str(exc).lower():
            raise
    return image_id_with(full(), image, logger)


def pin(client: Any, image_id: str, execution_id: str) -> str:
    """A name for ``image_id`` that only this execution uses, so that the container starts from the
    fingerprinted image even if the step's tag moves meanwhile (the Docker provider's operator looks
    its image up by name, and an image ID is no name). :func:`unpin` removes it after the run; the
    name says when it was made, so ``valohai-reuse gc`` can tell one a killed run left behind."""
    tag = f"{execution_id}.{int(time.time())}"
    client.tag(image_id, PIN_REPOSITORY, tag=tag)
    return f"{PIN_REPOSITORY}:{tag}"


def pin_of(name: str) -> tuple[str, float] | None:
    """(execution id, when it was made) of a :func:`pin` name; None for any other name."""
    repository, _, tag = name.rpartition(":")
    execution_id, _, made = tag.rpartition(".")
    if repository != PIN_REPOSITORY or not execution_id or not made.isdigit():
        return None
    return execution_id, float(made)


def unpin(client: Any, pinned: str, logger: logging.Logger = log) -> None:
    """Remove a :func:`pin` name without ever deleting the image: removing an image's last name
    deletes it, so an image left with no other name (one named only by its ID in valohai.yaml, or
    whose tag has moved since) keeps one name of its own, ``valohai-reuse-pinned:sha256-<id>``, as
    Docker itself would keep it as an untagged image."""
    from docker.errors import DockerException

    try:
        found = client.inspect_image(pinned)
        names = {*(found.get("RepoTags") or ()), *(found.get("RepoDigests") or ())} - {pinned}
        if not names:
            client.tag(found["Id"], PIN_REPOSITORY, tag=found["Id"].replace(":", "-"))
        client.remove_image(pinned, noprune=True)
    except DockerException as exc:  # a leftover name costs nothing; the run's result stands
        logger.warning("could not remove the image name %s: %s", pinned, exc)


def hook_client(docker_url: str | None) -> Any:
    """The Docker provider's client for ``docker_url``, as a DockerOperator's hook makes it."""
    from airflow.providers.docker.hooks.docker import DockerHook

    url = docker_url or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL
    return DockerHook(docker_conn_id=None, base_url=url).api_client
