"""Orphans: a worker killed (kill -9) while its container runs leaves the container and its work folder.

The run that takes the dead worker's lease over stops and removes a still running orphan of the same
fingerprint before it starts its own container; ``valohai-reuse gc`` removes finished node containers
and work folders that no container uses.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from docker.errors import NotFound
from docker.types import Mount
from workers import Worker, container_events, kill_group, wait_for_container

from airflow_valohai_reuse.cache.executions import ExecutionCache

pytestmark = pytest.mark.slow

FLIGHT = Path(__file__).resolve().parent / "pipelines" / "flight"
IMAGE = "valohai-reuse-example:busybox"
LABEL = "io.valohai-reuse"
HOLD_S = 50  # the orphan must still run when the second worker has started and taken the lease over
MIN_AGE_S = 5  # gc's minimum age here: other tests' containers on this daemon are younger than this
# while their own operator still needs them


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("valohai-reuse")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env)


@pytest.fixture
def pair(tmp_path, postgres_url):
    """Two workers sharing one PostgreSQL cache and artifact store, with a short lease."""
    prefix = f"or{uuid.uuid4().hex[:6]}_"
    env = {
        "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": postgres_url,
        "AIRFLOW__VALOHAI_REUSE__ARTIFACT_STORE": (tmp_path / "artifacts").as_uri(),
        "AIRFLOW__VALOHAI_REUSE__DAG_ID_PREFIX": prefix,
        "AIRFLOW__VALOHAI_REUSE__LEASE_SECONDS": "4",
        "AIRFLOW__VALOHAI_REUSE__LEASE_POLL_SECONDS": "0.5",
    }
    workers = [Worker.create(tmp_path, name, FLIGHT, env) for name in ("doomed", "survivor")]
    yield workers, f"{prefix}flight", ExecutionCache(postgres_url)


class RunningSampler(threading.Thread):
    """Counts the running containers carrying ``labels`` every 0.1 s: the most seen at once."""

    def __init__(self, client, labels: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.client, self.most, self.crowd = client, 0, []
        self.filters = {"label": [f"{k}={v}" for k, v in labels.items()], "status": "running"}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            running = self.client.api.containers(filters=self.filters)
            if len(running) > self.most:
                self.most, self.crowd = len(running), [c["Id"][:12] for c in running]

    def stop(self) -> None:
        self.done.set()
        self.join()


def test_takeover_stops_the_orphan_of_a_killed_worker_before_it_runs(pair, docker_client):
    (doomed, survivor), dag_id, cache = pair
    node = {f"{LABEL}.dag-id": dag_id, f"{LABEL}.task-id": "slow"}
    since = time.time()
    first = doomed.start(dag_id, {"seconds": HOLD_S})
    orphan = wait_for_container(docker_client, since, node)["id"]
    sampler = RunningSampler(docker_client, node)
    sampler.start()
    try:
        kill_group(first)  # kill -9 of the worker's whole process group
        killed = time.time()
        assert docker_client.containers.get(orphan).status == "running", "the kill took the container"
        second = survivor.start(dag_id, {"seconds": HOLD_S})
        assert second.wait() == 0, second.output()[-3000:]
    finally:
        sampler.stop()
    assert sampler.most == 1, f"{sampler.most} containers of one fingerprint ran at once: {sampler.crowd}"

    output = second.output()
    assert "taking over the lease of" in output
    assert f"stopping orphan container {orphan[:12]}" in output, output[-3000:]
    with pytest.raises(NotFound):
        docker_client.containers.get(orphan)
    (gone,) = [e for e in container_events(docker_client, killed, node, "destroy") if e["id"] == orphan]
    (own,) = [e for e in container_events(docker_client, killed, node) if e["id"] != orphan]
    assert gone["timeNano"] < own["timeNano"]
    print(
        f"\norphan removed {gone['timeNano'] / 1e9 - killed:.1f} s after the kill, "
        f"{(own['timeNano'] - gone['timeNano']) / 1e9:.2f} s before the takeover's container started"
    )

    (entry,) = cache.entries(step="slow")
    assert entry.id == survivor.xcom("slow", "valohai_execution")[0]["execution_id"]
    assert doomed.xcom("slow", "valohai_execution") == []
    labels = own["Actor"]["Attributes"]
    (orphan_start,) = [e for e in container_events(docker_client, since, node) if e["id"] == orphan]
    dead_labels = orphan_start["Actor"]["Attributes"]
    assert labels[f"{LABEL}.fingerprint"] == dead_labels[f"{LABEL}.fingerprint"] == entry.fingerprint
    assert "" != labels[f"{LABEL}.lease-holder"] != dead_labels[f"{LABEL}.lease-holder"] != ""

    (left,) = (doomed.home / "work").iterdir()  # the killed worker's work folder stayed
    swept = _cli(doomed.env, "gc", "--min-age", str(MIN_AGE_S))
    assert swept.returncode == 0, swept.stderr
    assert str(left) in swept.stdout and not left.exists()


def _labels(tag: str) -> dict[str, str]:
    return {f"{LABEL}.dag-id": tag, f"{LABEL}.task-id": "t", f"{LABEL}.execution-id": str(uuid.uuid4())}


def _aged(folder: Path, seconds: float) -> Path:
    (folder / "outputs").mkdir(parents=True)
    (folder / "outputs" / "model.txt").write_text("half written")
    then = time.time() - seconds
    for path in (folder / "outputs" / "model.txt", folder / "outputs", folder):
        os.utime(path, (then, then))
    return folder


def test_gc_removes_finished_containers_and_unused_work_folders(reuse_env, docker_client):
    work, tag = reuse_env / "work", f"gc{uuid.uuid4().hex[:8]}"
    stale, live = _aged(work / "dead.t.abc", 7200), _aged(work / "live.t.def", 7200)
    made, pin_tags = [], []
    try:
        exited = docker_client.containers.run(IMAGE, ["true"], labels=_labels(tag), detach=True)
        made.append(exited)
        exited.wait()
        created = docker_client.containers.create(IMAGE, ["true"], labels=_labels(tag))
        made.append(created)
        mount = Mount("/valohai/outputs", str(live / "outputs"), type="bind")
        running = docker_client.containers.run(
            IMAGE, ["sleep", "120"], labels=_labels(tag), mounts=[mount], detach=True
        )
        made.append(running)
        # image names a killed run left: an old one, a young one, and one of the running container
        hour_ago = int(time.time()) - 3600
        busy = running.labels[f"{LABEL}.execution-id"]
        left, young_pin, busy_pin = (
            f"{uuid.uuid4()}.{hour_ago}",
            f"{uuid.uuid4()}.{int(time.time()) + 600}",
            f"{busy}.{hour_ago}",
        )
        for pin_tag in (left, young_pin, busy_pin):
            docker_client.api.tag(IMAGE, "valohai-reuse-pinned", tag=pin_tag)
            pin_tags.append(pin_tag)
        time.sleep(MIN_AGE_S + 0.5)
        young = work / "young.t.ghi"
        young.mkdir()
        # young whatever the two gc commands take to start on a loaded machine (each can take longer
        # than the minimum age): its mtime is ahead of the clock
        ahead = time.time() + 600
        os.utime(young, (ahead, ahead))

        dry = _cli(os.environ.copy(), "gc", "--dry-run", "--min-age", str(MIN_AGE_S))
        assert dry.returncode == 0, dry.stderr
        for listed in (exited.id[:12], created.id[:12], str(stale)):
            assert listed in dry.stdout, dry.stdout
        for kept in (running.id[:12], str(live), str(young)):
            assert kept not in dry.stdout, dry.stdout
        assert stale.exists() and {c.id for c in docker_client.containers.list(all=True)} >= {
            c.id for c in made
        }

        done = _cli(os.environ.copy(), "gc", "--min-age", str(MIN_AGE_S))
        assert done.returncode == 0, done.stderr
        assert exited.id[:12] in done.stdout and str(stale) in done.stdout, done.stdout
        for container in (exited, created):
            with pytest.raises(NotFound):
                container.reload()
        running.reload()
        assert running.status == "running"
        pins = {t for i in docker_client.images.list(name="valohai-reuse-pinned") for t in i.tags}
        assert f"valohai-reuse-pinned:{left}" in done.stdout and f"valohai-reuse-pinned:{left}" not in pins
        assert {f"valohai-reuse-pinned:{young_pin}", f"valohai-reuse-pinned:{busy_pin}"} <= pins
        docker_client.images.get(IMAGE)  # the image itself stays
        assert not stale.exists() and live.exists() and young.exists()
        print(f"\n{dry.stdout}{done.stdout}")

        unreachable = {**os.environ, "AIRFLOW__VALOHAI_REUSE__DOCKER_URL": "unix:///nonexistent/docker.sock"}
        blind = _cli(unreachable, "gc", "--min-age", "0")
        assert blind.returncode == 0, blind.stderr
        assert "could not reach the Docker daemon" in blind.stdout
        assert "invalidate 0 execution(s)" in blind.stdout and live.exists() and young.exists()
    finally:
        for container in made:
            with contextlib.suppress(NotFound):
                container.remove(force=True)
        for pin_tag in pin_tags:
            with contextlib.suppress(NotFound):
                docker_client.images.remove(f"valohai-reuse-pinned:{pin_tag}", noprune=True)
