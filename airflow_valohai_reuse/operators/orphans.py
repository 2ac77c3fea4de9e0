"""Orphans: node containers and work folders left behind by a worker that died.

Docker does not know a worker was killed: the worker's container keeps running, and nobody
removes it or the work folder it mounts. Every node container is labelled with its fingerprint
and the lease holder that started it. The node that takes a dead worker's lease over stops and
removes the dead holder's containers of that fingerprint before it starts its own, so one
container per fingerprint runs; ``valohai-reuse gc`` removes node containers that ended or never
started, the image names a killed run left (``valohai-reuse-pinned:<execution>.<time>``), and work
folders no container uses.

A takeover searches only its own Docker daemon. An orphan on another Docker host runs to its end
there (its worker is gone, so nothing records or publishes what it makes); ``valohai-reuse gc``
run against that host removes it and its work folder afterwards.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docker.errors import DockerException, NotFound
from requests.exceptions import RequestException

from airflow_valohai_reuse.contracts import (
    EXECUTION_ID_LABEL,
    FINGERPRINT_LABEL,
    LEASE_HOLDER_LABEL,
    NODE_LABELS,
)
from airflow_valohai_reuse.reuse.image import PIN_REPOSITORY, pin_of, unpin
from airflow_valohai_reuse.runtime.commitcode import COMMITS_DIR

if TYPE_CHECKING:
    import logging

    from docker import APIClient

    from airflow_valohai_reuse.cache.lease import Held

#: an orphan's output is never recorded, so a long grace period would only delay the takeover
STOP_TIMEOUT_S = 5
UNREACHABLE = (DockerException, RequestException, OSError)


def stop_orphans(client: APIClient, fingerprint: str, dead: Held, logger: logging.Logger) -> list[str]:
    """Stop and remove the containers of ``fingerprint`` that ``dead``, the expired lease's holder, started.

    Only that holder's containers are touched: the lease is ours now, so it is gone, while a live
    holder's container and an unguarded run's (no holder) carry other labels.
    """
    wanted = {"label": [f"{FINGERPRINT_LABEL}={fingerprint}", f"{LEASE_HOLDER_LABEL}={dead.holder}"]}
    try:
        found = client.containers(filters={**wanted, "status": ["running", "paused", "restarting"]})
    except UNREACHABLE as exc:
        logger.warning("could not look for containers left running by %s (%s)", dead.describe(), exc)
        return []
    removed = []
    for container in found:
        cid = container["Id"]
        logger.warning(
            "stopping orphan container %s (%s) left running by %s, lease holder %s",
            cid[:12],
            _name(container),
            dead.describe(),
            dead.holder,
        )
        if _stop_and_remove(client, cid, logger):
            removed.append(cid)
    return removed


def _stop_and_remove(client: APIClient, cid: str, logger: logging.Logger) -> bool:
    try:
        client.stop(cid, timeout=STOP_TIMEOUT_S)
    except NotFound:
        return True  # it ended and went meanwhile
    except UNREACHABLE as exc:
        logger.warning("could not stop container %s (%s); removing it by force", cid[:12], exc)
    try:
        client.remove_container(cid, force=True)
    except NotFound:
        pass
    except UNREACHABLE as exc:
        logger.warning("could not remove orphan container %s (%s); running anyway", cid[:12], exc)
        return False
    logger.info("removed orphan container %s", cid[:12])
    return True


# -- gc -------------------------------------------------------------------------------------------
@dataclass
class Sweep:
    containers: list[str] = field(default_factory=list)  # "id  name  state  dag/run/task"
    work_dirs: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # what could not be removed, and why
    pins: list[str] = field(default_factory=list)  # image names of runs that ended without removing them
    unreachable: str | None = None  # why the Docker daemon could not be asked
    work_dirs_kept: bool = False  # keep_work_dirs is set


def connect(docker_url: str | None) -> APIClient:
    """The Docker daemon the workers use (as ``plan`` finds it)."""
    import docker

    client = docker.APIClient(base_url=docker_url) if docker_url else docker.from_env().api
    client.ping()
    return client


def sweep(
    docker_url: str | None, work_dir: Path, *, dry_run: bool, min_age_s: float, keep_work_dirs: bool
) -> Sweep:
    """Remove node containers that ended or never started, then work folders no container uses.

    Both only when older than ``min_age_s``: an operator reads its ended container's logs before
    removing it, and starts the container it has just created. Without the daemon nothing here is
    removed, since a work folder's users cannot be known.
    """
    report = Sweep(work_dirs_kept=keep_work_dirs)
    cutoff = time.time() - min_age_s
    try:
        client = connect(docker_url)
        finished = _finished(client, cutoff)
        report.containers = [_describe(c) for c in finished]
        gone = {c["Id"] for c in finished}
        if not dry_run:
            gone = _remove_containers(client, finished, report)
        used = _mounted(client, leaving=gone)
        report.pins = _left_pins(client, cutoff, leaving=gone)
        if not dry_run:
            for name in report.pins:
                unpin(client, name)
    except UNREACHABLE as exc:
        report.unreachable = f"{docker_url or 'DOCKER_HOST or the local socket'}: {exc}"
        return report
    if not keep_work_dirs:
        report.work_dirs = _unused_work_dirs(work_dir, cutoff, used)
        if not dry_run:
            _remove_work_dirs(report)
    return report


def _finished(client: APIClient, cutoff: float) -> list[dict[str, Any]]:
    states = {"label": EXECUTION_ID_LABEL, "status": ["exited", "dead", "created"]}
    return [c for c in client.containers(all=True, filters=states) if _since(client, c) < cutoff]


def _since(client: APIClient, container: dict[str, Any]) -> float:
    """When it ended; a container that never started counts from its creation."""
    if container["State"] == "created":
        return float(container["Created"])
    try:
        ended = client.inspect_container(container["Id"])["State"]["FinishedAt"]
    except NotFound:
        return time.time()  # removed meanwhile: nothing to do
    return datetime.fromisoformat(ended).timestamp()


def _remove_containers(client: APIClient, finished: list[dict[str, Any]], report: Sweep) -> set[str]:
    gone = set()
    for container in finished:
        try:
            client.remove_container(container["Id"], force=True)
        except NotFound:
            pass
        except DockerException as exc:
            report.failures.append(f"container {container['Id'][:12]}: {exc}")
            continue
        gone.add(container["Id"])
    return gone


def _left_pins(client: APIClient, cutoff: float, leaving: set[str]) -> list[str]:
    """Pin names older than ``cutoff`` whose execution has no container left (a run removes its own
    when its container ends; one killed meanwhile cannot)."""
    containers = client.containers(all=True, filters={"label": EXECUTION_ID_LABEL})
    kept = {c["Labels"].get(EXECUTION_ID_LABEL) for c in containers if c["Id"] not in leaving}
    names = [n for image in client.images(name=PIN_REPOSITORY) for n in image.get("RepoTags") or ()]
    return sorted(
        name for name in names if (pin := pin_of(name)) is not None and pin[1] < cutoff and pin[0] not in kept
    )


def _mounted(client: APIClient, leaving: set[str]) -> list[str]:
    """Host paths mounted by containers that run or may still start (any container, labelled or not)."""
    return [
        mount["Source"]
        for container in client.containers(all=True)
        if container["State"] not in ("exited", "dead") and container["Id"] not in leaving
        for mount in container.get("Mounts") or []
        if mount.get("Source")
    ]


def _unused_work_dirs(work_dir: Path, cutoff: float, used: list[str]) -> list[Path]:
    """Node work folders, and copies of commits' trees, that nothing used since ``cutoff``. The
    commits' folder itself is never a candidate: each tree in it is, aged by its last use."""
    if not work_dir.is_dir():
        return []
    commits = work_dir / COMMITS_DIR
    candidates = [folder for folder in work_dir.iterdir() if folder != commits]
    if commits.is_dir() and not commits.is_symlink():
        candidates += commits.iterdir()
    return sorted(
        folder
        for folder in candidates
        if folder.is_dir()
        and not folder.is_symlink()
        and not _in_use(folder, used)
        and not _touched_since(folder, cutoff)
    )


def _in_use(folder: Path, used: list[str]) -> bool:
    roots = {str(folder), os.path.realpath(folder)}
    return any(source == root or source.startswith(root + os.sep) for source in used for root in roots)


def _touched_since(folder: Path, cutoff: float) -> bool:
    """Whether anything in ``folder`` changed since ``cutoff``: a node may still be staging its inputs.

    A folder that cannot be read counts as touched: what cannot be seen is kept.
    """
    try:
        for entry in os.scandir(folder):
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                return True
            if entry.is_dir(follow_symlinks=False) and _touched_since(Path(entry.path), cutoff):
                return True
        return folder.lstat().st_mtime >= cutoff
    except OSError:
        return True


def _remove_work_dirs(report: Sweep) -> None:
    for folder in report.work_dirs:
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            report.failures.append(f"work folder {folder}: {exc}")


def _name(container: dict[str, Any]) -> str:
    return ",".join(name.lstrip("/") for name in container.get("Names") or [])


def _describe(container: dict[str, Any]) -> str:
    labels = container.get("Labels") or {}
    node = "/".join(labels.get(key, "?") for key in NODE_LABELS[:3])
    return f"{container['Id'][:12]}  {_name(container)}  {container['State']}  {node}"
