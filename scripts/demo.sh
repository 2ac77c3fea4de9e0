#!/usr/bin/env bash
# Run the example pipeline twice with `airflow dags test`; the second run reuses every node.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME=${AIRFLOW_HOME:-$PWD/.airflow-home}
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags
export AIRFLOW__VALOHAI_REUSE__PIPELINES_FOLDER=$PWD/examples
mkdir -p "$AIRFLOW_HOME"
.venv/bin/airflow db migrate >/dev/null
for attempt in first second; do
  start=$(date +%s%N)
  .venv/bin/airflow dags test nightly-training >"$AIRFLOW_HOME/demo-$attempt.log" 2>&1
  end=$(date +%s%N)
  echo "== $attempt run: $(( (end - start) / 1000000 )) ms wall"
  grep -oE "(not reused|REUSED execution|PINNED execution|reuse_executions is off)[^[]*" "$AIRFLOW_HOME/demo-$attempt.log" || true
  grep -oE "run_duration=[0-9.]+, state=[a-z]+" "$AIRFLOW_HOME/demo-$attempt.log"
done
