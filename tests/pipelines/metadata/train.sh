# Prints metadata as valohai.metadata.logger() does (a newline, then one JSON object per batch).
out=/valohai/outputs
for epoch in 0 1 2 3 4; do
  case $epoch in 0) loss=1.0 ;; 1) loss=0.5 ;; 2) loss=0.33 ;; 3) loss=0.25 ;; 4) loss=0.2 ;; esac
  printf '\n{"epoch": %s, "loss": %s}\n' "$epoch" "$loss"
  echo "epoch $epoch done"
done
echo '{"accuracy": 0.9, "note": "done"}'
echo 'not {"json": 1}'
echo "model trained on 5 rows" > $out/model.txt
echo '{"valohai.tags": ["candidate"], "accuracy": 0.5}' > $out/model.txt.metadata.json
mkdir -p $out/plots
echo "1.0 0.5 0.33 0.25 0.2" > $out/plots/curve.txt
printf 'epoch,loss\n0,1.0\n1,0.5\n2,0.33\n3,0.25\n4,0.2\n' > $out/metrics.csv
{
  echo '{"file": "model.txt", "metadata": {"accuracy": 0.9, "rows": 5}}'
  echo '{"file": "plots/curve.txt", "metadata": {"kind": "plot"}}'
} > $out/valohai.metadata.jsonl
