"""An execution's page in a real Airflow (scripts/airflow-local.sh) and headless Chromium: the step's
metadata (last values, a chart of each series), each output's properties, a preview of small text and
CSV files, and downloads through the plugin with the user's session; an S3 store's downloads are
presigned URLs of a real S3-compatible server.

The pipeline prints metadata and writes output properties (tests/pipelines/metadata); it is served
under the name the script unpauses. It runs twice: the second run reuses every node. The screenshots
stay in ``valohai-reuse-execution-screenshots`` beside tests/test_ui.py's folder (``VR_SCREENSHOTS``,
or valohai-reuse-ui-screenshots in the temporary folder), which that test empties when it starts."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from browser import Browser
from local_airflow import LocalAirflow, status

pytestmark = pytest.mark.slow

DAG = "nightly-training"  # the name scripts/airflow-local.sh waits for and unpauses
PROJECT = Path(__file__).resolve().parent / "pipelines" / "metadata"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, docker_client):
    home = tmp_path_factory.mktemp("execution-page")
    pipelines = home / "pipelines"
    shutil.copytree(PROJECT, pipelines / "metadata")
    path = pipelines / "metadata" / "valohai.yaml"
    path.write_text(path.read_text().replace("name: metrics", f"name: {DAG}"))
    running = LocalAirflow(home, {"AIRFLOW_LOCAL_PIPELINES": str(pipelines)})
    try:
        yield running.ready()
    finally:
        assert running.stop() == 130, running.log.read_text()[-3000:]


@pytest.fixture(scope="module")
def browser(airflow):
    base = Path(
        os.environ.get("VR_SCREENSHOTS") or Path(tempfile.gettempdir()) / "valohai-reuse-ui-screenshots"
    )
    folder = base.with_name("valohai-reuse-execution-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    chromium = Browser(airflow.url, folder)
    chromium.sign_in(airflow.token)
    yield chromium
    chromium.quit()


@pytest.fixture(scope="module")
def runs(airflow):
    first = airflow.trigger(DAG)
    assert airflow.finished(DAG, first) == "success"
    second = airflow.trigger(DAG)
    assert airflow.finished(DAG, second) == "success"
    return first, second


def _outputs_link(airflow, run_id: str, task_id: str) -> str:
    path = f"dags/{DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/links"
    return airflow.api(path)["extra_links"]["Outputs"]


def _fetch_in_page(browser, href: str) -> tuple[int, str, bytes]:
    """A GET from the page itself, with the user's session (the frame's cookies): status,
    Content-Disposition and the bytes."""
    found = browser.driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(async (r) => {
          const bytes = new Uint8Array(await r.arrayBuffer());
          let text = ""; for (const b of bytes) text += String.fromCharCode(b);
          done([r.status, r.headers.get("content-disposition") || "", btoa(text)]);
        }).catch((e) => done([0, String(e), ""]));
        """,
        href,
    )
    return found[0], found[1], base64.b64decode(found[2])


def test_execution_page_shows_metadata_properties_previews_and_downloads(airflow, browser, runs):
    from selenium.webdriver.common.by import By

    first, second = runs
    link = _outputs_link(airflow, second, "train")  # the reused task instance's: the same execution
    assert link == _outputs_link(airflow, first, "train")
    browser.open(link)
    text = browser.frame("Execution reuse", "Runs that reused it")
    section = text.split("Metadata", 1)[1].split("Outputs", 1)[0]
    rows = {line.split()[0]: line for line in section.splitlines() if line.strip()}
    assert rows["loss"].split()[1] == "0.2" and "5 values, 0.2 \u2013 1" in rows["loss"]
    assert rows["epoch"].split()[1] == "4" and rows["accuracy"].split()[1] == "0.9"
    assert rows["note"].split()[1] == "done"
    # one chart per numeric series, drawn as inline SVG
    charts = browser.driver.find_elements(By.CSS_SELECTOR, "svg.spark polyline")
    assert len(charts) == 2 and all(len(c.get_attribute("points").split()) == 5 for c in charts)
    # each output with its properties; the sidecar and the jsonl file are no outputs of their own
    outputs = text.split("Outputs", 1)[1].split("Runs that reused it", 1)[0]
    assert "model.txt.metadata.json" not in outputs and "valohai.metadata.jsonl" not in outputs
    assert "valohai.tags" in outputs and "candidate" in outputs and "rows\n5" in outputs
    assert "kind\nplot" in outputs
    previews = browser.driver.find_elements(By.CSS_SELECTOR, "tr.preview")
    assert len(previews) == 3  # metrics.csv as a table, model.txt and plots/curve.txt as text
    cells = [td.text for td in browser.driver.find_elements(By.CSS_SELECTOR, "table.csv td")]
    assert cells[:4] == ["epoch", "loss", "0", "1.0"]
    assert "model trained on 5 rows" in outputs
    # the cards read as words apart
    assert "ran innightly" not in text and "finished2" not in text
    assert f"ran in\n{DAG} / {first} / train" in text or f"ran in {DAG} / {first} / train" in text
    # the metadata at the top of the frame, the outputs with their download links below it
    browser.driver.execute_script("document.getElementById('metadata').scrollIntoView()")
    shot = browser.shot("execution-metadata")
    assert shot.stat().st_size > 10_000

    # a download through the page's own link, with the user's session, gives the stored bytes
    browser.frame("Execution reuse", "Runs that reused it")
    anchor = browser.driver.find_element(By.CSS_SELECTOR, 'a.download[title="download model.txt"]')
    href = anchor.get_attribute("href")
    code, disposition, body = _fetch_in_page(browser, href)
    assert code == 200 and "attachment" in disposition and "model.txt" in disposition
    row = anchor.find_element(By.XPATH, "./ancestor::tr[1]")
    checksum = row.find_element(By.CSS_SELECTOR, "td.mono[title]").get_attribute("title")
    assert body == b"model trained on 5 rows\n" and hashlib.sha256(body).hexdigest() == checksum
    nested = browser.driver.find_element(By.CSS_SELECTOR, 'a.download[title="download plots/curve.txt"]')
    assert _fetch_in_page(browser, nested.get_attribute("href"))[2] == b"1.0 0.5 0.33 0.25 0.2\n"
    # the outputs, each with its download link, its properties and a preview
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", anchor)
    assert browser.shot("execution-download").stat().st_size > 10_000
    browser.frame("Execution reuse", "Runs that reused it")  # the shot left the frame
    # nobody signed in gets nothing; an output the execution does not have is not found
    assert status(href)[0] == 401
    assert status(href.replace("model.txt", "model.txt.metadata.json"), token=airflow.token)[0] == 404
    assert status(href, token=airflow.token)[1] == body


def test_the_run_tab_shows_each_node_s_metadata(browser, runs):
    _, second = runs
    browser.open(f"dags/{DAG}/runs/{quote(second, safe='')}/plugin/reuse")
    text = browser.frame("Reuse", "nodes reused")
    table = text.split("why it ran")[1]  # below the graph, whose boxes start with the node names too
    train = next(line for line in table.splitlines() if line.startswith("train"))
    assert "accuracy 0.9" in train and "loss 0.2" in train  # kept on reuse: the source's metadata
    report = next(line for line in table.splitlines() if line.startswith("report"))
    assert "accuracy" not in report
    browser.shot("run-view-metadata")


def test_an_s3_store_s_download_is_a_short_lived_presigned_url(s3, reuse_env, tmp_path):
    from airflow_valohai_reuse.plugins import downloads
    from airflow_valohai_reuse.stores.registry import open_store

    client, _ = s3
    data = tmp_path / "model.txt"
    data.write_bytes(b"weights\n")
    store = open_store("s3://artifacts/store", "aws_default")
    uri = store.put(data, hashlib.sha256(b"weights\n").hexdigest(), 8)
    url = downloads.presigned_url(store, uri, "model.txt")
    assert url is not None
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    # signed for five minutes, as SigV4 (X-Amz-Expires) or SigV2 (an Expires time) says it
    if "X-Amz-Expires" in query:
        lifetime = float(query["X-Amz-Expires"])
    else:
        lifetime = int(query["Expires"]) - time.time()
    assert 290 <= lifetime <= 300 and ("X-Amz-Signature" in query or "Signature" in query)
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read() == b"weights\n"
        assert "attachment" in answer.headers["Content-Disposition"]
    client.put_object(Bucket="data", Key="other.txt", Body=b"not an artifact")
    assert downloads.presigned_url(store, "s3://data/other.txt", "other.txt") is None  # only the store's
    assert downloads.local_path(store, uri) is None
    shown = downloads.previews(store, [{"name": "model.txt", "uri": uri, "size": 8}])
    assert shown["model.txt"].text == "weights\n"
