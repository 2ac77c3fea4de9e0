"""Reuse where Airflow's users look, and steering runs from the plugin's pages, in a real Airflow
(scripts/airflow-local.sh: scheduler, API server) with a real headless Chromium: task-instance and run
notes that the Grid marks, the run's Reuse tab drawn as the pipeline's graph with each node's badge,
the tabs' own icons, a refused pin's reason on the tab, "no such run" for a run that is not there,
Reuse nodes with a parameter changed for the new run, and the Plan's "Trigger with this conf".

One Airflow for the module, two test functions (an API server start costs half a minute). The
screenshots stay in ``valohai-reuse-steering-screenshots`` beside tests/test_ui.py's folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from browser import Browser
from local_airflow import LocalAirflow, call, status

pytestmark = pytest.mark.slow

DAG = "nightly-training"
NODES = ("preprocess", "train", "evaluate")


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, docker_client):
    running = LocalAirflow(tmp_path_factory.mktemp("steering-airflow"))
    try:
        yield running.ready()
    finally:
        assert running.stop() == 130, running.log.read_text()[-3000:]


@pytest.fixture(scope="module")
def browser(airflow, request):
    base = Path(
        os.environ.get("VR_SCREENSHOTS") or Path(tempfile.gettempdir()) / "valohai-reuse-ui-screenshots"
    )
    folder = base.with_name("valohai-reuse-steering-screenshots")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\nsteering screenshots: {folder}")
    chromium = Browser(airflow.url, folder)
    chromium.sign_in(airflow.token)
    yield chromium
    chromium.quit()


@pytest.fixture(scope="module")
def runs(airflow):
    """The example twice: every node runs, then every node is reused."""
    first = airflow.trigger(DAG)
    assert airflow.finished(DAG, first) == "success"
    second = airflow.trigger(DAG)
    assert airflow.finished(DAG, second) == "success"
    return first, second


def _run(airflow, run_id: str) -> dict:
    return airflow.api(f"dags/{DAG}/dagRuns/{quote(run_id, safe='')}")


def _ti(airflow, run_id: str, task_id: str) -> dict:
    return airflow.api(f"dags/{DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}")


def _tall_shot(browser, name: str, frame: str, element_id: str, *, top: bool = False) -> None:
    """A shot with a taller window, the plugin's frame scrolled so that ``element_id`` shows (at the
    top of the frame, or at its bottom)."""
    browser.driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 1150, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        browser.frame(frame, "")
        browser.driver.execute_script(
            "document.getElementById(arguments[0]).scrollIntoView(arguments[1])", element_id, top
        )
        time.sleep(0.3)
        browser.shot(name)
    finally:
        browser.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _grid_closeup(browser, name: str) -> None:
    """The Grid's task names, run bars and cells, three times the pixels: the note marks are a few
    pixels in the corner of each cell."""
    import base64

    rect = browser.driver.execute_script(
        """
        const names = [...document.querySelectorAll("body *")].filter((e) =>
          e.children.length === 0 && ["preprocess", "evaluate"].includes(e.textContent.trim())
          && e.getBoundingClientRect().left < 400);
        const first = names[0].getBoundingClientRect();
        const last = names[names.length - 1].getBoundingClientRect();
        return {x: first.left - 8, y: first.top - 130, bottom: last.bottom + 12};
        """
    )
    clip = {"x": rect["x"], "y": rect["y"], "width": 250, "height": rect["bottom"] - rect["y"], "scale": 3}
    png = browser.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "clip": clip})
    (browser.screenshots / f"{name}.png").write_bytes(base64.b64decode(png["data"]))


def _grid_notes(airflow, run_id: str) -> dict[str, bool]:
    """Task id → ``has_note``, as the Grid's own endpoint answers the UI."""
    code, body = status(f"{airflow.url}/ui/grid/ti_summaries/{DAG}?run_ids={quote(run_id)}", airflow.token)
    assert code == 200, body
    summaries = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    return {t["task_id"]: t["has_note"] for s in summaries for t in s["task_instances"]}


def test_notes_mark_reuse_in_the_grid_and_the_reuse_tab_draws_the_pipeline(airflow, browser, runs):
    from selenium.webdriver.common.by import By

    from airflow_valohai_reuse.plugins.display import runs_short

    first, second = runs
    # the scheduler's listener wrote them when the run ended; none on the run where every node ran
    for task_id in NODES:
        note = _ti(airflow, second, task_id)["note"]
        assert note.startswith("\u267b reused "), note
        assert f" from {DAG}/{first}/{task_id} \u00b7 saved " in note
        assert _ti(airflow, first, task_id)["note"] is None
    assert _run(airflow, second)["note"].startswith("3/3 reused, ")
    assert _run(airflow, first)["note"] is None
    assert _grid_notes(airflow, second) == dict.fromkeys(NODES, True)
    assert not any(_grid_notes(airflow, first).values())

    browser.open(f"dags/{DAG}/runs/{quote(second, safe='')}/tasks/train")
    browser.until("the task instance's note", lambda: "\u267b reused" in browser.text())
    browser.shot("task-instance-note")
    browser.open(f"dags/{DAG}")
    browser.until("the Grid's runs", lambda: "preprocess" in browser.text() and "evaluate" in browser.text())
    time.sleep(2)  # the Grid's cells stream in after its task names
    # twice the pixels, so the small cells' note marks can be told apart in the picture
    metrics = {"width": 1280, "height": 900, "deviceScaleFactor": 2, "mobile": False}
    browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    browser.shot("grid-with-notes")
    browser.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    _grid_closeup(browser, "grid-with-notes-closeup")

    browser.open(f"dags/{DAG}/runs/{quote(second, safe='')}/plugin/reuse")
    text = browser.frame("Reuse", "nodes reused")
    graph = browser.driver.find_element(By.ID, "pipeline-graph")
    boxes = {g.get_attribute("data-node"): g.text for g in graph.find_elements(By.CSS_SELECTOR, "g.node")}
    assert list(boxes) == list(NODES)
    for node, words in boxes.items():
        assert "reused" in words and f"from {runs_short(first)}" in words, (node, words)
    assert len(graph.find_elements(By.CSS_SELECTOR, "path.edge")) == 2
    assert text.index("preprocess") < text.index("nodes reused")  # the graph above the table
    browser.shot("reuse-tab-graph")

    # Graph mode leaves the run's tabs under 600 px, where the UI shows each tab as its icon alone
    browser.driver.switch_to.default_content()
    toggle = browser.until(
        "the Graph mode button",
        lambda: browser.driver.find_elements(By.CSS_SELECTOR, "[aria-label*='Graph'], [title*='Graph']"),
    )
    toggle[0].click()

    def tab_icons() -> dict[str, str] | None:
        found = browser.driver.find_elements(By.CSS_SELECTOR, "img[alt='Reuse'], img[alt='Reuse nodes']")
        icons = {img.get_attribute("alt"): img.get_attribute("src") for img in found}
        return icons if set(icons) == {"Reuse", "Reuse nodes"} else None

    icons = browser.until("the plugin tabs' icons", tab_icons)
    time.sleep(1)  # the graph lays itself out
    browser.shot("graph-mode-tab-icons")
    browser.driver.find_elements(By.CSS_SELECTOR, "[aria-label*='Grid'], [title*='Grid']")[0].click()
    assert icons["Reuse"] != icons["Reuse nodes"] and all(
        s.startswith("data:image/svg+xml") for s in icons.values()
    )

    # a refused pin: its reason on the run's tab, its node's badge says so
    failed = airflow.trigger(DAG, {"reuse_nodes": {"train": "no-such-execution"}})
    assert airflow.finished(DAG, failed) == "failed"
    browser.open(f"dags/{DAG}/runs/{quote(failed, safe='')}/plugin/reuse")
    text = browser.frame("Reuse", "Refused pins")
    reason = text.split("Refused pins")[1].splitlines()[1]
    assert reason.startswith("train: ") and "no-such-execution" in reason, text
    badges = {
        g.get_attribute("data-node"): g.text
        for g in browser.driver.find_elements(By.CSS_SELECTOR, "#pipeline-graph g.node")
    }
    assert "pin refused" in badges["train"] and "upstream failed" in badges["evaluate"], badges
    browser.shot("reuse-tab-refused-pin")

    # a run that is not there
    code, body = status(f"{airflow.url}/valohai-reuse/api/runs/{DAG}/no-such-run", airflow.token)
    assert code == 404 and b"No such run" in body
    code, body = status(f"{airflow.url}/valohai-reuse/run?dag_id={DAG}&run_id=no-such-run", airflow.token)
    assert code == 404 and b"No such run: DAG nightly-training has no run &#39;no-such-run&#39;." in body
    code, _ = status(
        f"{airflow.url}/valohai-reuse/reuse-nodes?dag_id={DAG}&run_id=no-such-run", airflow.token
    )
    assert code == 404


def test_reuse_nodes_with_other_epochs_and_plan_triggers_its_conf(airflow, browser, runs):
    from selenium.webdriver.common.by import By

    first, _ = runs
    browser.open(f"dags/{DAG}/runs/{quote(first, safe='')}/plugin/reuse-nodes")
    text = browser.frame("Reuse nodes", "Parameters of the new run")
    assert "epochs" in text
    box = browser.driver.find_element(By.ID, "param-epochs")
    assert box.get_attribute("value") == "3"  # as the run had it
    browser.driver.find_element(By.CSS_SELECTOR, "input[name=node][value=preprocess]").click()
    box.clear()
    box.send_keys("2.5")
    browser.until("a refused value", lambda: 'epochs: "2.5" is not an integer' in browser.text())
    assert not browser.driver.find_element(By.ID, "trigger").is_enabled()
    box.clear()
    box.send_keys("5")
    shown = browser.until("the conf it will send", lambda: '"epochs": 5' in (t := browser.text()) and t)
    expected = {"reuse_from_run": {"run_id": first, "nodes": ["preprocess"]}, "epochs": 5}
    sent = json.loads(browser.driver.find_element(By.ID, "conf").text)
    assert sent == expected, shown
    _tall_shot(browser, "reuse-nodes-parameters", "Reuse nodes", "reuse-form", top=True)
    browser.frame("Reuse nodes", "Parameters of the new run")  # the shot left the frame
    browser.driver.find_element(By.ID, "trigger").click()
    new = browser.until("the new run's link", lambda: browser.driver.find_element(By.ID, "new-run")).text
    _tall_shot(browser, "reuse-nodes-triggered", "Reuse nodes", "result")
    run = _run(airflow, new)
    assert run["conf"] == expected
    assert airflow.finished(DAG, new) == "success"
    nodes = call(f"{airflow.url}/valohai-reuse/api/runs/{DAG}/{quote(new, safe='')}", token=airflow.token)
    kinds = {n["node"]: n["kind"] for n in nodes["nodes"]}
    assert kinds == {"preprocess": "pinned", "train": "ran", "evaluate": "ran"}  # other epochs: trained anew
    assert _ti(airflow, new, "preprocess")["note"].startswith("\U0001f4cc pinned ")
    assert _ti(airflow, new, "train")["note"] is None
    assert _run(airflow, new)["note"] == f"Reuses preprocess from run {first}; epochs 5"  # the page's own

    browser.open(f"dags/{DAG}/plugin/reuse-plan")
    browser.frame("Plan", "conf (JSON")
    conf = browser.driver.find_element(By.ID, "conf")
    conf.clear()
    conf.send_keys(json.dumps({"epochs": 5}))
    browser.driver.find_element(By.ID, "plan").click()
    text = browser.frame("Plan", "Trigger with this conf")
    assert "preprocess: hit" in text and "train: hit" in text  # the run just made trained with 5
    browser.driver.find_element(By.ID, "trigger").click()
    planned = browser.until(
        "the planned run's link", lambda: browser.driver.find_element(By.ID, "new-run")
    ).text
    _tall_shot(browser, "plan-triggered", "Plan", "new-run")
    assert _run(airflow, planned)["conf"] == {"epochs": 5}
    assert airflow.finished(DAG, planned) == "success"
    assert _run(airflow, planned)["note"].startswith("3/3 reused, ")  # as planned
