#!/bin/sh
# "Train": sum the values, scaled by the hyperparameters. Stands in for hours of GPU time.
set -e
epochs=3; lr=0.01
for arg in "$@"; do
  case "$arg" in --epochs=*) epochs="${arg#*=}";; --learning_rate=*) lr="${arg#*=}";; esac
done
sleep 3
total=$(awk -F, 'NR > 1 {s += $2} END {print s}' /valohai/inputs/dataset/clean.csv)
echo "weights total=$total epochs=$epochs lr=$lr" > /valohai/outputs/model.txt
echo "{\"accuracy\": 0.9, \"epochs\": $epochs}"
