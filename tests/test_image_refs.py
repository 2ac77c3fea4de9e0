"""Image references as Docker reads them: every form Docker's CLI accepts names the same local image
and identity; a node's container starts from the image ID its fingerprint holds, even if the tag
moves after the decision; an absent image is pulled once from a registry that is there, and fails
in one line naming the reference where none is."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from functools import cached_property
from pathlib import Path
from urllib.parse import urlparse

import pytest

from airflow_valohai_reuse.reuse.image import PIN_REPOSITORY, ImageError, parse_reference, pin_of

BUSYBOX = "valohai-reuse-example:busybox"
BASH = "valohai-reuse-example:bash"
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("written", "familiar"),
    [
        ("x", "x:latest"),
        ("docker.io/library/x", "x:latest"),
        ("index.docker.io/library/x:2", "x:2"),
        ("library/x:2", "x:2"),
        ("docker.io/owner/img:tag", "owner/img:tag"),
        ("index.docker.io/owner/img", "owner/img:latest"),
        ("localhost:5000/path/x:tag", "localhost:5000/path/x:tag"),
        ("localhost/x", "localhost/x:latest"),
        ("registry-1.docker.io/x", "registry-1.docker.io/x:latest"),  # Docker keeps this host
        ("ghcr.io/a/b/c@sha256:" + "a" * 64, "ghcr.io/a/b/c@sha256:" + "a" * 64),
        ("x:1@sha256:" + "b" * 64, "x:1@sha256:" + "b" * 64),
        ("sha256:" + "c" * 64, "sha256:" + "c" * 64),
        ("d" * 64, "sha256:" + "d" * 64),
    ],
)
def test_a_reference_is_normalised_as_dockers_cli_normalises_it(written, familiar):
    assert parse_reference(written).familiar == familiar


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("Owner/Img", "must be lowercase"),
        ("my image", "not a valid Docker image reference"),
        ("x:", "tag '' is not a valid Docker tag"),
        ("x@md5:12", "not a valid digest"),
    ],
)
def test_a_malformed_reference_is_refused_by_name(written, problem):
    with pytest.raises(ImageError) as caught:
        parse_reference(written)
    assert str(caught.value).startswith(f"image {written!r}: ")
    assert problem in str(caught.value)


# -- with the Docker daemon ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def busybox_id(docker_client):
    return docker_client.api.inspect_image(BUSYBOX)["Id"]


@pytest.fixture
def tagged(docker_client):
    """Names given to local images for one test, removed afterwards."""
    names: list[str] = []

    def tag(image: str, repository: str, version: str) -> str:
        docker_client.api.tag(image, repository, tag=version)
        names.append(f"{repository}:{version}")
        return names[-1]

    yield tag
    from docker.errors import ImageNotFound

    for name in names:
        with contextlib.suppress(ImageNotFound):  # where the test removed it itself
            docker_client.api.remove_image(name, noprune=True)


STEP = """
- step:
    name: {name}
    image: {image}
    command:
      - cp /valohai/config/execution.json /valohai/outputs/execution.json
      - echo "bash=${{BASH_VERSION:+yes}}" > /valohai/outputs/seen.txt
"""
PIPELINE = """
- pipeline:
    name: refs
    reuse-executions: true
    nodes:
{nodes}
    edges: []
"""


def _project(root: Path, images: dict[str, str]) -> Path:
    text = "".join(STEP.format(name=name, image=image) for name, image in images.items())
    nodes = "".join(f"      - {{name: {n}, type: execution, step: {n}}}\n" for n in images)
    (root / "project").mkdir()
    (root / "project" / "valohai.yaml").write_text(text + PIPELINE.format(nodes=nodes))
    return root / "project" / "valohai.yaml"


def _output(xcom: dict, name: str) -> str:
    (found,) = [o for o in xcom["outputs"] if o["name"] == name]
    return Path(urlparse(found["uri"]).path).read_text()


def _pins(docker_client) -> list[str]:
    return [t for i in docker_client.api.images(name=PIN_REPOSITORY) for t in i["RepoTags"] or ()]


def test_every_form_docker_accepts_runs_the_same_local_image(reuse_env, docker_client, busybox_id, tagged):
    from harness import run

    from airflow_valohai_reuse import build_dags
    from airflow_valohai_reuse.reuse.image import image_id

    tagged(BUSYBOX, "docker.io/library/vr-refs", "latest")
    tagged(BUSYBOX, "docker.io/vrowner/vr-refs", "v1")
    tagged(BUSYBOX, "localhost:5000/path/vr-refs", "v1")
    written = {
        "library": "docker.io/library/vr-refs",
        "bare": "vr-refs",
        "index": "index.docker.io/vrowner/vr-refs:v1",
        "owner": "docker.io/vrowner/vr-refs:v1",
        "hostport": "localhost:5000/path/vr-refs:v1",
        "by-id": busybox_id,
    }
    for image in written.values():
        assert image_id(None, image, lambda: docker_client.api) == busybox_id
    result = run(build_dags(_project(reuse_env, written))["refs"], docker_client)
    assert result.state == "success", result.task_states
    assert result.containers_started == len(written)  # nothing pulled, every node ran
    for node, image in written.items():
        execution = json.loads(_output(result.xcoms[node], "execution.json"))
        assert execution["valohai.execution-image"] == image  # the reference as written
    # the per-execution names that started the containers are gone again
    ran = {x["execution_id"] for x in result.xcoms.values()}
    assert not ran & {pin[0] for pin in map(pin_of, _pins(docker_client)) if pin}


def test_a_tag_moved_after_the_decision_does_not_change_what_runs(
    reuse_env, docker_client, busybox_id, tagged
):
    from harness import run

    from airflow_valohai_reuse import build_dags
    from airflow_valohai_reuse.operators.reusable_docker import ReusableDockerOperator

    if not docker_client.images.list(name=BASH):
        subprocess.run([str(ROOT / "scripts" / "build-images.sh")], check=True)
    bash_id = docker_client.api.inspect_image(BASH)["Id"]
    tagged(BUSYBOX, "docker.io/vrowner/vr-moving", "v1")

    class TagMovesAfterDecision(ReusableDockerOperator):
        """The node's own operator; the step's tag moves to another image the moment it first
        connects to run the container, which is after its fingerprint and decision."""

        @cached_property
        def hook(self):
            docker_client.api.tag(bash_id, "docker.io/vrowner/vr-moving", tag="v1")
            return ReusableDockerOperator.hook.func(self)

    dag = build_dags(_project(reuse_env, {"moving": "docker.io/vrowner/vr-moving:v1"}))["refs"]
    dag.get_task("moving").__class__ = TagMovesAfterDecision
    result = run(dag, docker_client)
    assert result.state == "success", result.task_states
    assert docker_client.api.inspect_image("vrowner/vr-moving:v1")["Id"] == bash_id  # it did move
    assert _output(result.xcoms["moving"], "seen.txt").strip() == "bash="  # busybox ran, as decided


def test_an_absent_image_without_a_registry_fails_in_one_line_naming_it(reuse_env, docker_client):
    from harness import run

    from airflow_valohai_reuse import build_dags
    from airflow_valohai_reuse.reuse.image import image_id

    reference = "docker.io/vrowner/vr-absent:v1"
    started = time.monotonic()
    with pytest.raises(ImageError) as caught:
        image_id(None, reference, lambda: docker_client.api)
    took = time.monotonic() - started
    message = str(caught.value)
    assert message.startswith(f"image {reference!r}: is not on the Docker daemon and pulling it failed: ")
    assert "\n" not in message and "http+docker" not in message  # the daemon's reason, no HTTP noise
    print(f"pull refused after {took:.3f} s: {message}")
    result = run(build_dags(_project(reuse_env, {"absent": reference}))["refs"], docker_client)
    assert result.task_states["absent"] == "failed"
    assert result.containers_started == 0


@pytest.fixture
def registry(tmp_path):
    """Docker's own registry (Debian's docker-registry) on loopback, which the daemon trusts over
    plain HTTP as it trusts every 127.0.0.0/8 registry."""
    from local_airflow import free_port

    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("Debian's docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'store'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n"
    )
    process = subprocess.Popen([binary, "serve", str(config)], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def test_a_digest_reference_and_a_pull_once_from_a_registry(reuse_env, docker_client, tagged, registry):
    from harness import run

    from airflow_valohai_reuse import build_dags

    repository = f"{registry}/vr/pulled"
    tagged(BUSYBOX, repository, "v1")
    docker_client.api.push(repository, tag="v1")
    digests = docker_client.api.inspect_image(f"{repository}:v1")["RepoDigests"]
    (digest,) = [d for d in digests if d.startswith(repository)]
    docker_client.api.remove_image(f"{repository}:v1", noprune=True)  # absent by name: pulled once
    since = int(time.time()) - 1
    images = {"by-digest": f"{registry}/vr/pulled@{digest.split('@')[1]}"}
    dags = build_dags(_project(reuse_env, images))
    first, second = run(dags["refs"], docker_client), run(dags["refs"], docker_client)
    events = docker_client.api.events(
        since=since, until=int(time.time()) + 1, decode=True, filters={"type": "image", "event": "pull"}
    )
    pulls = [e for e in events if e.get("id", "").startswith(f"{registry}/vr/pulled")]
    assert first.state == second.state == "success", (first.task_states, second.task_states)
    assert len(pulls) == 1  # the first run pulled; the second found the image and reused the node
    assert second.xcoms["by-digest"]["reused"] is True
    assert (
        json.loads(_output(first.xcoms["by-digest"], "execution.json"))["valohai.execution-image"]
        == images["by-digest"]
    )
    docker_client.api.remove_image(images["by-digest"], noprune=True)
