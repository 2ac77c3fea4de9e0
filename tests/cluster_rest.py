"""The test cluster's REST API, as the tests use it: the admin's token, runs triggered and awaited,
task instances, XComs, and task logs from the shared log folder."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class ClusterRest:
    """Mixed into :class:`cluster.Cluster`, which gives ``url``, ``base`` (where the API server writes
    ``passwords.json``), ``logs``, ``_token`` and ``wait``."""

    url: str
    base: Path
    logs: Path
    _token: str | None

    def _health(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
                return response.status == 200 and (self.base / "passwords.json").exists()
        except OSError:
            return False

    def _dag_exists(self, dag_id: str) -> bool:
        status, _ = self.call("GET", f"/api/v2/dags/{dag_id}")
        return status == 200

    def token(self) -> str:
        if self._token is None:
            password = json.loads((self.base / "passwords.json").read_text())["admin"]
            body = {"username": "admin", "password": password}
            status, answer = self.call("POST", "/auth/token", body=body, auth=False)
            assert status in (200, 201), (status, answer)
            self._token = answer["access_token"]
        return self._token

    def call(self, method: str, path: str, body: Any = None, auth: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
        except OSError as error:
            return 0, str(error)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        status, run = self.call(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}}
        )
        assert status == 200, (status, run)
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        status, run = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return run["state"] if status == 200 else None

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        return self.wait(
            f"{dag_id}/{run_id} finished",
            lambda: (s := self.run_state(dag_id, run_id)) in ("success", "failed") and s,
            timeout,
        )

    def task(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        status, ti = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return ti if status == 200 else {}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "valohai_execution") -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        status, entry = self.call("GET", path + "?deserialize=true")
        assert status == 200, (status, entry)
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    def task_log(self, dag_id: str, run_id: str, task_id: str, attempt: int = 1) -> str:
        """The task's log file in the shared log folder."""
        path = (
            self.logs
            / f"dag_id={dag_id}"
            / f"run_id={run_id}"
            / f"task_id={task_id}"
            / f"attempt={attempt}.log"
        )
        return path.read_text(errors="replace") if path.exists() else ""
