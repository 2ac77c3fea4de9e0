#!/usr/bin/env bash
# The seed scenario on examples/digits, run with `airflow dags test` through the drop-in DAG file:
# a first run, a second run that reuses every node, then a one-line change to the model code
# (models/classifier.py) after which preprocessing is reused and training and evaluation run.
# The project is copied to a temporary folder first (the change is made there, never in the
# repository), with a fresh AIRFLOW_HOME unless one is set. Usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dag=digits-training
image=python:3.11-bookworm
if ! docker image inspect "$image" >/dev/null 2>&1; then
  echo "no $image image: run scripts/setup.sh first (it builds one locally)" >&2
  exit 1
fi
work=$(mktemp -d /tmp/valohai-reuse-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/pipelines"
cp -r examples/digits "$work/pipelines/digits"
export AIRFLOW_HOME=${AIRFLOW_HOME:-$work/airflow-home}
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER=$root/dags
export AIRFLOW__VALOHAI_REUSE__PIPELINES_FOLDER=$work/pipelines
mkdir -p "$AIRFLOW_HOME"
.venv/bin/airflow db migrate >/dev/null

# One line per node, from its task's log lines: whether it ran (and why) or was reused (and the time
# it saved); then the time saved in all and the evaluation's metrics, as its metadata line printed them.
report() {
  awk '
    BEGIN { h = "[0-9a-f][0-9a-f][0-9a-f][0-9a-f]"; uuid_tail = "-" h "-" h "-" h "-" h h h }
    /\[DAG TEST\] starting task_id=/ { match($0, /task_id=[^ ]+/); task = substr($0, RSTART + 8, RLENGTH - 8) }
    /\] (not reused|REUSED execution|PINNED execution|reuse_executions is off)/ {
      line = $0
      sub(/^[^]]*\] /, "", line)
      sub(/ \[airflow[^]]*\] loc=.*$/, "", line)
      sub(/ from [^ ]+ \(/, " (", line)
      gsub(uuid_tail, "…", line)  # execution ids: their first 8 digits
      if (match(line, /time saved: [0-9.]+ s/)) saved += substr(line, RSTART + 12, RLENGTH - 14)
      print task ": " line
    }
    /\] \{"test_accuracy"/ { metrics = $0; sub(/^[^]]*\] /, "", metrics); sub(/ \[airflow[^]]*\] loc=.*$/, "", metrics) }
    END {
      printf "time saved: %.1f s\n", saved
      if (metrics != "") print "evaluate metadata: " metrics
    }
  ' "$1"
}

run() {
  local name=$1 log=$AIRFLOW_HOME/demo-$1.log start end state
  start=$(date +%s%N)
  .venv/bin/airflow dags test "$dag" >"$log" 2>&1 || true
  end=$(date +%s%N)
  state=$(grep -oE "run_duration=[0-9.]+, state=[a-z]+" "$log" | tail -1 | sed 's/.*state=//')
  printf '== %s run: %d.%d s wall, %s\n' "$name" $(((end - start) / 1000000000)) \
    $(((end - start) / 100000000 % 10)) "${state:-no result (see $log)}"
  report "$log"
  [ "$state" = success ] || status=1
}

status=0

run first
run second
model=$work/pipelines/digits/models/classifier.py
line=$(grep -n 'activation="relu"' "$model" | cut -d: -f1)
sed -i "${line}s/activation=\"relu\"/activation=\"tanh\"/" "$model"
echo "== one-line change, models/classifier.py line $line: activation=\"relu\" → activation=\"tanh\""
run third
exit $status
