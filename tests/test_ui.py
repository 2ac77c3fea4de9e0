"""Reuse in the Airflow UI, checked in a real Airflow (scripts/airflow-local.sh) with a real headless
Chromium: the Execution reuse page, an execution's page, a run's Reuse view, the extra links, the
Reuse nodes view triggering a run, the Plan view, and the API server refusing anyone not signed in.

One Airflow for the module. The example pipeline runs twice (the second run reuses every node), then
once more from the Reuse nodes view. Screenshots stay under the folder printed at the end
(``VR_SCREENSHOTS`` chooses it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
from browser import Browser
from local_airflow import ROOT, LocalAirflow, status

pytestmark = pytest.mark.slow

DAG = "nightly-training"
NODES = ("preprocess", "train", "evaluate")
PRICES = {"*": 2.5}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, docker_client):
    home = tmp_path_factory.mktemp("ui-airflow")
    running = LocalAirflow(home, {"AIRFLOW__VALOHAI_REUSE__PRICE_PER_HOUR": json.dumps(PRICES)})
    try:
        yield running.ready()
    finally:
        assert running.stop() == 130, running.log.read_text()[-3000:]


@pytest.fixture(scope="module")
def screenshots(request):
    # outside pytest's temporary folders, which other test runs on the machine clear
    folder = Path(
        os.environ.get("VR_SCREENSHOTS") or Path(tempfile.gettempdir()) / "valohai-reuse-ui-screenshots"
    )
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\nUI screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser(airflow, screenshots):
    chromium = Browser(airflow.url, screenshots)
    chromium.sign_in(airflow.token)
    yield chromium
    chromium.quit()


@pytest.fixture(scope="module")
def runs(airflow, browser):
    """Two runs of the example: the first runs every node, the second reuses them all. The dashboard is
    looked at before the first, while the cache is empty."""
    browser.open("plugin/execution-reuse")
    empty = browser.frame("Execution reuse", "Recent cache entries")
    assert "No executions are recorded yet" in empty
    browser.shot("dashboard-empty")
    first = airflow.trigger(DAG)
    assert airflow.finished(DAG, first) == "success"
    second = airflow.trigger(DAG)
    assert airflow.finished(DAG, second) == "success"
    return first, second


def _links(airflow, run_id: str, task_id: str) -> dict:
    return airflow.api(f"dags/{DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/links")


def test_the_plugin_refuses_requests_without_a_signed_in_user(airflow):
    for path in (
        "/valohai-reuse/",
        f"/valohai-reuse/run?dag_id={DAG}&run_id=x",
        f"/valohai-reuse/plan?dag_id={DAG}",
    ):
        assert status(airflow.url + path)[0] == 401
        assert status(airflow.url + path, token="not-a-token")[0] in (401, 403)
        # signed in: the page, or for the made-up run x its "no such run"
        assert status(airflow.url + path, token=airflow.token)[0] == (404 if "run_id=x" in path else 200)


def test_dashboard_shows_runs_reuses_time_and_cost_saved(browser, runs):
    browser.open("plugin/execution-reuse")
    text = browser.frame("Execution reuse", "Recent cache entries")
    assert "reuse rate\n50%" in text
    assert "executions run\n3" in text and "executions reused\n3" in text
    assert "cost saved (price_per_hour)" in text
    for node in NODES:
        assert node in text
    assert DAG in text  # the per-pipeline table
    assert "no earlier successful execution of step" in text  # the first run's misses, explained
    from selenium.webdriver.common.by import By

    bars = browser.driver.find_elements(By.CSS_SELECTOR, "svg rect.bar")
    assert len(bars) == 7 and any(float(b.get_attribute("height")) > 0 for b in bars)
    browser.shot("dashboard")


def test_execution_page_lists_outputs_and_the_runs_that_reused_it(airflow, browser, runs):
    first, second = runs
    preprocess = _links(airflow, first, "preprocess")["extra_links"]["Outputs"]
    browser.open(preprocess)
    text = browser.frame("Execution reuse", "Runs that reused it")
    assert "clean.csv" in text and "file://" in text and "B" in text
    assert second in text  # the run that reused it
    assert "Fingerprint" in text and "parameters" in text
    browser.shot("execution")


def test_run_view_lists_each_node_reused_with_its_source_and_time_saved(browser, runs):
    first, second = runs
    browser.open(f"dags/{DAG}/runs/{quote(second, safe='')}/plugin/reuse")
    text = browser.frame("Reuse", "nodes reused")
    assert "nodes reused\n3" in text and "nodes run\n0" in text
    assert text.count("reused") >= 4 and first in text
    browser.shot("run-view")
    from selenium.webdriver.common.by import By

    # a link to an Airflow page opens in the UI around the frame, not inside it
    browser.frame("Reuse", "nodes reused")
    browser.driver.find_element(
        By.CSS_SELECTOR, f'a[href$="/runs/{quote(first, safe="")}/tasks/preprocess"]'
    ).click()
    browser.driver.switch_to.default_content()
    browser.until(
        "the source task instance's page", lambda: "/tasks/preprocess" in browser.driver.current_url
    )
    assert quote(first, safe="") in browser.driver.current_url or first in browser.driver.current_url
    # the address changes first; the UI then renders the task page in place of the run's Reuse tab
    browser.until(
        "the Reuse frame replaced by the task page",
        lambda: not browser.driver.find_elements(By.CSS_SELECTOR, 'iframe[title="Reuse"]'),
        timeout=30,
    )
    browser.open(f"dags/{DAG}/runs/{quote(first, safe='')}/plugin/reuse")
    text = browser.frame("Reuse", "nodes run")
    assert "nodes run\n3" in text and "no earlier successful execution of step 'preprocess'" in text


def test_extra_links_point_at_the_source_task_instance_and_the_outputs(airflow, browser, runs):
    first, second = runs
    reused = _links(airflow, second, "train")["extra_links"]
    assert reused["Source execution"] == f"dags/{DAG}/runs/{quote(first, safe='')}/tasks/train"
    assert reused["Outputs"].startswith("plugin/execution-reuse/valohai-reuse/executions/")
    ran = _links(airflow, first, "train")["extra_links"]
    assert ran["Source execution"] is None  # absent: the node ran
    assert ran["Outputs"] == reused["Outputs"]  # the same execution
    from selenium.webdriver.common.by import By

    browser.open(f"dags/{DAG}/runs/{quote(second, safe='')}/tasks/train/details")
    browser.until(
        "Source execution button", lambda: browser.driver.find_element(By.LINK_TEXT, "Source execution")
    )
    browser.shot("task-instance-links")
    browser.open(f"dags/{DAG}/runs/{quote(second, safe='')}/tasks/train/plugin/task-reuse")
    text = browser.frame("Reuse", "of compute saved")
    assert "Reuse of train in run" in text and "reused" in text and first in text
    browser.open(f"dags/{DAG}/runs/{quote(second, safe='')}/tasks/train/details")
    link = browser.until(
        "Source execution button", lambda: browser.driver.find_element(By.LINK_TEXT, "Source execution")
    )
    link.click()
    browser.until(
        "source task instance",
        lambda: (
            f"/runs/{quote(first, safe='')}/tasks/train" in browser.driver.current_url
            or f"/runs/{first}/tasks/train" in browser.driver.current_url
        ),
    )


def test_a_reused_task_log_starts_with_reused(airflow, runs):
    """After Airflow's own collapsed "Pre Execute" group, the first line is ours and says REUSED."""
    first, second = runs
    path = f"dags/{DAG}/dagRuns/{quote(second, safe='')}/taskInstances/preprocess/logs/1"
    events = [line.get("event", "") for line in airflow.api(path)["content"] if isinstance(line, dict)]
    after = events[events.index("::group::Pre Execute") :]
    body = after[after.index("::endgroup::") + 1 :]
    assert body[0].startswith("REUSED execution "), events
    assert f"from {DAG}/{first}/preprocess (time saved: " in body[0]


def test_reuse_nodes_view_triggers_a_run_that_reuses_the_ticked_nodes(airflow, browser, runs):
    first, _ = runs
    from selenium.webdriver.common.by import By

    browser.open(f"dags/{DAG}/runs/{quote(first, safe='')}/plugin/reuse-nodes")
    browser.frame("Reuse nodes", "Trigger a new run")
    # two clicks from the run: its Reuse nodes tab, then the node's own button
    browser.driver.find_element(By.ID, "reuse-preprocess").click()
    link = browser.until("the new run's link", lambda: browser.driver.find_element(By.ID, "new-run"))
    new = link.text
    browser.shot("reuse-nodes")
    run = airflow.api(f"dags/{DAG}/dagRuns/{quote(new, safe='')}")
    assert run["conf"] == {"reuse_from_run": {"run_id": first, "nodes": ["preprocess"]}}
    assert airflow.finished(DAG, new) == "success"
    browser.open(f"dags/{DAG}/runs/{quote(new, safe='')}/plugin/reuse")
    text = browser.frame("Reuse", "nodes reused")
    table = text.split("why it ran")[1]  # below the graph, whose boxes start with the node names too
    row = next(line for line in table.splitlines() if line.startswith("preprocess"))
    assert "pinned" in row and first in text  # taken from the ticked run, not run


def test_plan_view_gives_the_same_answer_as_the_command(airflow, browser, runs):
    conf = {"epochs": 5}
    from selenium.webdriver.common.by import By

    browser.open(f"dags/{DAG}/plugin/reuse-plan")
    browser.frame("Plan", "conf (JSON")
    box = browser.driver.find_element(By.ID, "conf")
    box.clear()
    box.send_keys(json.dumps(conf))
    browser.driver.find_element(By.ID, "plan").click()
    text = browser.frame("Plan", "time it would save")
    command = subprocess.run(
        [
            str(Path(sys.executable).with_name("valohai-reuse")),
            "plan",
            "examples/nightly/valohai.yaml",
            DAG,
            "--conf",
            json.dumps(conf),
        ],
        cwd=ROOT,
        env={
            **airflow.env,
            "AIRFLOW_HOME": str(airflow.home / "home"),
            "AIRFLOW__VALOHAI_REUSE__PIPELINES_FOLDER": str(ROOT / "examples"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert command.returncode == 0, command.stderr
    lines = [line for line in command.stdout.splitlines() if ":" in line]
    assert lines and all(line in text for line in lines), (lines, text)
    assert "preprocess: hit" in text and "train: miss, runs: parameter epochs 3 → 5" in text
    browser.shot("plan")


def test_run_view_of_a_failed_run_lists_the_nodes_without_a_result_with_their_state(airflow, browser, runs):
    """A refused pin fails its node: the run's Reuse tab lists what was reused and, apart, the nodes that
    published nothing with Airflow's state; the failed node's own Reuse tab says it published nothing."""
    failed = airflow.trigger(DAG, {"reuse_nodes": {"train": "no-such-execution"}})
    assert airflow.finished(DAG, failed) == "failed"
    browser.open(f"dags/{DAG}/runs/{quote(failed, safe='')}/plugin/reuse")
    text = browser.frame("Reuse", "Without a result")
    assert "nodes reused\n1" in text and "nodes run\n0" in text
    rows = {line.split()[0]: line for line in text.split("Without a result")[1].splitlines() if line.strip()}
    assert "failed" in rows["train"] and "upstream failed" in rows["evaluate"], text
    assert "preprocess" not in rows  # reused: listed above, with its source
    assert list(rows).index("train") < list(rows).index("evaluate")  # in the pipeline's order
    browser.shot("run-view-failed")
    browser.open(f"dags/{DAG}/runs/{quote(failed, safe='')}/tasks/train/plugin/task-reuse")
    text = browser.frame("Reuse", "Without a result")
    assert "No node of this task has published an execution (run failed)." in text
    assert "appear here as they finish" not in text  # the run is over: no node will appear
    assert "evaluate" not in text and "failed" in text.split("Without a result")[1]
    browser.driver.switch_to.default_content()  # the UI around the frame loads its task instance last
    browser.until("the task instance's header", lambda: "No Task Instance found" not in browser.text())
    browser.shot("task-view-failed")
