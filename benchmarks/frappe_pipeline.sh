#!/usr/bin/env bash
# Speed and quality on Frappe, in order: transform, training throughput, one full training
# run of FSDNet and of DCNv2 (seed 2023), exports (ŷ and teacher-only), serving latency.
# Usage: bash benchmarks/frappe_pipeline.sh OUT_DIR [FRAPPE_DIR]   (hours on 2 cores: run in background)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?output directory}; data=${2:-../shared/data/frappe}
py=.venv/bin/python
mkdir -p "$out"
[ -f "$out/transform/stats.json" ] || $py benchmarks/transform_speed.py --data-dir "$data" --output "$out/transform" | tee "$out/transform_speed.json"
$py benchmarks/train_speed.py --transform-dir "$out/transform" | tee "$out/train_speed.json"
for model in fsdnet dcnv2; do
  .venv/bin/fsdnet-train --config frappe --transform-dir "$out/transform" --run-dir "$out/runs/$model-2023" \
    --set model.type=$model --set seed=2023 --no-progress | tee "$out/train_$model.txt"
done
rm -rf "$out/models"
.venv/bin/fsdnet-export --run-dir "$out/runs/fsdnet-2023" --model-base-path "$out/models/fsdnet"
.venv/bin/fsdnet-export --run-dir "$out/runs/fsdnet-2023" --model-base-path "$out/models/fsdnet-teacher" --heads teacher
for m in fsdnet fsdnet-teacher; do
  $py benchmarks/serving_latency.py --model-base-path "$out/models/$m" --model-name fsdnet \
    --rows "$out/transform/raw_sample_test.jsonl" | tee "$out/serving_$m.json"
done
