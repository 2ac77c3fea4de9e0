#!/bin/sh
set -e
mkdir -p /valohai/outputs/report
wc -c /valohai/inputs/model/model.txt | awk '{print "{\"model_bytes\": " $1 "}"}' > /valohai/outputs/report/report.json
cat /valohai/outputs/report/report.json
