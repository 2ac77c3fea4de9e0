#!/bin/sh
# Keep the rows whose value is at least --min_value. Slow on purpose: preprocessing is the expensive part.
set -e
min=10
for arg in "$@"; do case "$arg" in --min_value=*) min="${arg#*=}";; esac; done
sleep 3
awk -F, -v min="$min" 'NR == 1 || $2 >= min' /valohai/inputs/raw/raw.csv > /valohai/outputs/clean.csv
echo "{\"rows\": $(($(wc -l < /valohai/outputs/clean.csv) - 1))}"
