"""The Execution reuse page with 100,000 cache entries: how long the API server takes to answer it.

A cache database is filled through SQL (bench/dashboard_rows.py) with ``ENTRIES`` executions (their
ledger rows: ran) and as many ledger rows that reused one of them, spread over 60 days, 8 pipelines
of 5 steps, three environment slugs. Then a real ``airflow api-server`` (the plugin loaded from the
entry point, simple auth) serves the page over HTTP on loopback, and each figure is the median wall
time of a GET with a bearer token, first request excluded: the dashboard (last 7 and 30 days, with
prices so the cost query runs too), a later page of entries, an execution's page and a run's view.
SQLite by default; ``--postgres`` (when the local server answers) measures the same on PostgreSQL too.

``python -m bench.dashboard [--entries N] [--repeats N] [--postgres] [--screenshot FILE]`` prints the
figures (about two minutes for 100,000 entries on SQLite); ``--screenshot`` keeps the 30-day page as
headless Chromium drew it, to look at.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from bench.dashboard_rows import fill, say

ENTRIES = 100_000
PRICES = {"aws-eu-west-1-g4dn-xlarge": 0.71, "aws-eu-west-1-c5-2xlarge": 0.45, "*": 0.1}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class ApiServer:
    """``airflow api-server`` alone on loopback, every user an admin (a token from GET /auth/token)."""

    def __init__(self, home: Path, cache_url: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env |= {
            "PATH": f"{Path(sys.executable).parent}:{env['PATH']}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__VALOHAI_REUSE__SQL_ALCHEMY_CONN": cache_url,
            "AIRFLOW__VALOHAI_REUSE__PRICE_PER_HOUR": json.dumps(PRICES),
        }
        (home / "dags").mkdir(parents=True, exist_ok=True)
        airflow = str(Path(sys.executable).with_name("airflow"))
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        self.log = home / "api-server.log"
        self.process = subprocess.Popen(
            [airflow, "api-server"], env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 180
        while _health(self.url) != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(1)
        self.token = json.loads(_get(f"{self.url}/auth/token")[1])["access_token"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _health(url: str) -> int | None:
    try:
        return _get(f"{url}/api/v2/monitor/health")[0]
    except OSError:
        return None


def _median_ms(server: ApiServer, path: str, repeats: int, expect: str) -> float:
    status, body = _get(server.url + path, server.token)  # warms the engine and the templates
    if status != 200 or expect.encode() not in body:
        raise RuntimeError(f"GET {path} answered {status}: {body[:500]!r}")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        _get(server.url + path, server.token)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def _pages(url: str) -> dict[str, tuple[str, str]]:
    from sqlalchemy import select

    from airflow_valohai_reuse.cache.executions import engine_for
    from airflow_valohai_reuse.cache.schema import ledger

    with engine_for(url).connect() as conn:
        row = conn.execute(select(ledger).where(ledger.c.kind == "reused").limit(1)).one()
    run = f"/valohai-reuse/run?dag_id={row.dag_id}&run_id={urllib.parse.quote(row.run_id)}"
    return {
        "dashboard_7d": ("/valohai-reuse/?days=7", "Recent cache entries"),
        "dashboard_30d": ("/valohai-reuse/?days=30", "Recent cache entries"),
        "entries_page_2000": ("/valohai-reuse/?days=30&page=2000", "Recent cache entries"),
        "execution_page": (f"/valohai-reuse/executions/{row.execution_id}", "Runs that reused it"),
        "run_view": (run, "Reuse in run"),
    }


LOAD_TIME = "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;"


def _browser_ms(server: ApiServer, path: str, repeats: int, screenshot: Path | None) -> float | None:
    """The page's load in headless Chromium (navigation start to the load event), where selenium and
    Debian's chromium are installed (the test extra and scripts/setup.sh); None elsewhere. The page as
    drawn goes to ``screenshot`` when given."""
    import shutil

    try:
        from selenium import webdriver
    except ImportError:
        return None
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    chromium = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    try:
        chromium.get(f"{server.url}/api/v2/monitor/health")
        chromium.add_cookie({"name": "_token", "value": server.token, "path": "/"})
        times = []
        for _ in range(repeats + 1):
            chromium.get(server.url + path)
            times.append(chromium.execute_script(LOAD_TIME))
        if screenshot is not None:
            chromium.set_window_size(1280, 1600)
            chromium.save_screenshot(str(screenshot))
        return round(statistics.median(times[1:]), 1)
    finally:
        chromium.quit()


def measure(
    url: str, label: str, entries: int, repeats: int, screenshot: Path | None = None
) -> dict[str, float]:
    fill(url, entries)
    home = Path(tempfile.mkdtemp(prefix="vr-bench-dashboard-"))
    server = ApiServer(home, url)
    try:
        figures = {
            f"{name}_ms_{label}": _median_ms(server, path, repeats, expect)
            for name, (path, expect) in _pages(url).items()
        }
        loaded = _browser_ms(server, "/valohai-reuse/?days=30", repeats, screenshot)
        if loaded is not None:
            figures[f"dashboard_30d_chromium_load_ms_{label}"] = loaded
        return figures
    finally:
        server.stop()


def _postgres_url() -> str | None:
    from sqlalchemy import create_engine, text

    name = f"vr_bench_dashboard_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(
            "postgresql+psycopg2://postgres@127.0.0.1:5432/test", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        say(f"no PostgreSQL ({exc}); SQLite only")
        return None
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--entries", type=int, default=ENTRIES)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--screenshot", type=Path, help="a PNG of the 30-day page (SQLite's run)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vr-bench-dashboard-"))
    label = f"{args.entries // 1000}k"
    sqlite = f"sqlite:///{workdir / 'cache.db'}"
    figures = measure(sqlite, f"sqlite_{label}", args.entries, args.repeats, args.screenshot)
    if args.postgres and (url := _postgres_url()):
        figures |= measure(url, f"postgres_{label}", args.entries, args.repeats)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
