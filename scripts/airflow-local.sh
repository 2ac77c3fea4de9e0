#!/usr/bin/env bash
# A local Airflow UI for the example pipelines, with reuse on: the four components `airflow standalone`
# starts (scheduler with the LocalExecutor, dag-processor, triggerer, API server), each on loopback or
# serving nothing (standalone's log servers listen on every interface). Prints the URL and the login,
# unpauses the example DAG once it is parsed, and stops everything on Ctrl-C.
# Usage: scripts/airflow-local.sh
#   AIRFLOW_LOCAL_PORT (default 8080), AIRFLOW_LOCAL_HOME (default .airflow-local: its AIRFLOW_HOME,
#   metadata database, execution cache, artifacts and logs, kept between starts)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
port=${AIRFLOW_LOCAL_PORT:-8080}
home=${AIRFLOW_LOCAL_HOME:-$root/.airflow-local}
url=http://127.0.0.1:$port
dag=nightly-training

if [ ! -x .venv/bin/airflow ]; then
  echo "no .venv/bin/airflow: run scripts/setup.sh first" >&2
  exit 1
fi
if (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
  echo "port $port is in use; choose another with AIRFLOW_LOCAL_PORT=..." >&2
  exit 1
fi
scripts/start-docker.sh
docker image inspect valohai-reuse-example:busybox >/dev/null 2>&1 || scripts/build-images.sh

# Components start `airflow` and task processes by name: the venv's bin comes first on PATH.
export PATH=$root/.venv/bin:$PATH
export AIRFLOW_HOME=$home
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$home/airflow.db
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER=$root/dags
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=$url/execution/
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$port
export AIRFLOW__VALOHAI_REUSE__PIPELINES_FOLDER=${AIRFLOW_LOCAL_PIPELINES:-$root/examples}
mkdir -p "$home/components"
echo "migrating the metadata database in $home"
airflow db migrate >"$home/components/db-migrate.log" 2>&1

group=
helper=
stop() {
  trap - INT TERM HUP EXIT
  [ -z "$helper" ] || kill "$helper" 2>/dev/null || true
  [ -n "$group" ] || return 0
  echo "stopping Airflow"
  kill -TERM -- -"$group" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 -- -"$group" 2>/dev/null || break
    sleep 1
  done
  kill -KILL -- -"$group" 2>/dev/null || true
  echo "stopped"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop; exit 129' HUP
trap stop EXIT

# One process group for every component (and the task processes they start), so one signal stops all.
setsid bash -c '
  logs=$1
  airflow api-server >"$logs/api-server.log" 2>&1 &
  airflow scheduler --skip-serve-logs >"$logs/scheduler.log" 2>&1 &
  airflow dag-processor >"$logs/dag-processor.log" 2>&1 &
  airflow triggerer --skip-serve-logs >"$logs/triggerer.log" 2>&1 &
  wait -n
' _ "$home/components" &
group=$!

echo "starting the scheduler, dag-processor, triggerer and API server (logs in $home/components)"
# In the background, so that a signal to this script interrupts `wait` at once.
.venv/bin/python - "$url" "$home" "$dag" "$group" <<'PYTHON' &
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: the script's trap stops Airflow, no traceback
url, home, dag, group = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
deadline = time.monotonic() + 300


def call(method, path, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return None, None


def until(what, done):
    while True:
        result = done()
        if result:
            return result
        try:
            os.kill(group, 0)
        except ProcessLookupError:
            sys.exit(f"an Airflow component stopped while waiting for {what}; see {home}/components")
        if time.monotonic() > deadline:
            sys.exit(f"no {what} after 300 s; see {home}/components")
        time.sleep(1)


passwords = os.path.join(home, "simple_auth_manager_passwords.json.generated")
until("API server", lambda: call("GET", "/api/v2/monitor/health")[0] == 200 and os.path.exists(passwords))
with open(passwords) as f:
    password = json.load(f)["admin"]
status, body = call("POST", "/auth/token", body={"username": "admin", "password": password})
if status not in (200, 201):
    sys.exit(f"POST /auth/token answered {status}")
token = body["access_token"]
print(f"Airflow UI: {url}  login: admin / {password}", flush=True)
until(f"DAG {dag} parsed", lambda: call("GET", f"/api/v2/dags/{dag}", token)[0] == 200)
status, body = call("PATCH", f"/api/v2/dags/{dag}", token, {"is_paused": False})
if status != 200 or body["is_paused"]:
    sys.exit(f"unpausing {dag} answered {status}")
print(f"{dag} (examples/nightly/valohai.yaml) is unpaused: trigger it in the UI; Ctrl-C stops Airflow", flush=True)
PYTHON
helper=$!
wait "$helper"
helper=

set +e
wait "$group"
echo "an Airflow component stopped; see $home/components" >&2
exit 1
