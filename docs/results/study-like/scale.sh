#!/usr/bin/env bash
# Issue 18 part 3: one alpha per species (--scale species) against one per series (the
# default) at the same FLOPs: today's recipe (rank 8, lr 1e-3, context 256, numeric head,
# bf16, SmolLM2-135M-Instruct), 200 steps with forecasts of 20 validation series every 25
# (curve.sh's run, which is the `series` side: it is run here if DIR lacks it), then both
# final adapters and the species run's best/ on the first 100 test series, greedy,
# history 50 -> 50 (11 minutes each here).
#   bash docs/results/study-like/scale.sh DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1" && cd "$1"
export LVTIME_LEDGER=$PWD/lvtime-ledger.json
[ -f lv.h5 ] || lvtime simulate lv.h5
[ -d r-curve ] || bash "$here/curve.sh" "$PWD"
t() { local t0=$(date +%s); "$@"; echo "$(( $(date +%s) - t0 )) s: $*" >> walls.txt; }
t lvtime finetune lv.h5 --model smollm2-135m-instruct --rank 8 --lr 1e-3 --context 256 --head numeric \
    --dtype bfloat16 --val-series 20 --steps 200 --forecast-every 25 --forecast-series 20 --forecast-batch 20 \
    --history 50 --scale species --out r-species --quiet --json > r-species.json
TEST="lv.h5 --limit 100 --batch-size 50 --dtype bfloat16 --quiet --json"
t lvtime forecast $TEST --adapter r-curve/final --out test-series > test-series.json
t lvtime forecast $TEST --adapter r-species/final --out test-species > test-species.json
# each run's best/ too (the series run's is its final adapter, step 200)
t lvtime forecast $TEST --adapter r-species/best --out test-species-best > test-species-best.json
python - <<'PY'
import json
print("| forecast (100 test series) | scale | prey MAE | prey R² | prey MASE | pred MAE | pred R² | pred MASE | amplitude prey / pred | FLOPs to this adapter (training + evaluations) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
import numpy as np
def amplitude(folder):
    z = np.load(f"{folder}/forecasts.npz")
    return np.median(z["forecast"].std(axis=1) / z["truth"].std(axis=1), axis=0)
for folder, train in [("test-series", "r-curve"), ("test-species", "r-species"), ("test-species-best", "r-species")]:
    d = json.load(open(f"{folder}/metrics.json"))
    m = d["metrics"]["model"]
    cells = [f"{m[sp][k]['median']:.3g}" for sp in ("prey", "predator") for k in ("mae", "r2", "mase")]
    summary = json.load(open(f"{train}/summary.json"))
    flops = summary["best_flops" if folder.endswith("-best") else "flops_total"]
    amp = amplitude(folder)
    print(f"| {folder} | {d['settings']['scale']} | " + " | ".join(cells) + f" | {amp[0]:.2f} / {amp[1]:.2f} | {flops:.3g} |")
for name, m in json.load(open("test-series/metrics.json"))["metrics"].items():
    if name != "model":
        print(name, {sp: round(m[sp]["mase"]["median"], 3) for sp in ("prey", "predator")})
for run in ("r-curve", "r-species"):
    s = json.load(open(f"{run}/summary.json"))
    print(run, "best", s["best_step"], round(s["best_score"], 3), "scores", {k: round(v, 2) for k, v in s["forecast_scores"].items()})
PY
