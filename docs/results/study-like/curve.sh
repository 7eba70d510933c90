#!/usr/bin/env bash
# Issue 18 part 3: one run's forecast-score curve against training FLOPs, with the
# references on the same 20 validation series (history 50 -> 50). Today's recipe (rank 8,
# lr 1e-3, context 256, numeric head, bf16) on `lvtime simulate` defaults (study-like).
#   bash docs/results/study-like/curve.sh DIR
set -eu
mkdir -p "$1" && cd "$1"
export LVTIME_LEDGER=$PWD/lvtime-ledger.json
[ -f lv.h5 ] || lvtime simulate lv.h5
lvtime finetune lv.h5 --model smollm2-135m-instruct --rank 8 --lr 1e-3 --context 256 --head numeric \
    --dtype bfloat16 --val-series 20 --steps 200 --forecast-every 25 --forecast-series 20 --forecast-batch 20 \
    --history 50 --out r-curve --quiet --json > r-curve.json
python - <<'PY'
import json
rows = [json.loads(x) for x in open("r-curve/metrics.jsonl") if "forecast_score" in x]
refs = rows[0]["references"]
print("| step | training+eval FLOPs | MASE (mean) | prey MASE | predator MASE | prey R² | predator R² |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['step']} | {r['flops']:.2e} | {r['forecast_score']:.3g} | {r['prey']['mase']:.3g} | "
          f"{r['predator']['mase']:.3g} | {r['prey']['r2']:.3g} | {r['predator']['r2']:.3g} |")
print("references:", {k: round(v, 3) for k, v in refs.items()})
s = json.load(open("r-curve.json"))
print("best:", s["best_step"], s["best_score"], f"{s['best_flops']:.2e}", "last:", s["steps"], "wall", round(s["wall_s"]))
PY
