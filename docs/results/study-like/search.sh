#!/usr/bin/env bash
# Issue 18 part 3: a TPE + ASHA search against a grid over the same options, under the
# grid's total FLOPs (training + in-training forecasts), then each one's best adapter
# (best/, the step of its best validation forecast) on the first 100 test series, greedy.
# SmolLM2-135M-Instruct, context 256, numeric head, bf16, 80 steps, forecasts of the
# first 20 validation series (history 50 -> 50) at steps 0, 40 and 80.
#   bash docs/results/study-like/search.sh DIR
set -eu
mkdir -p "$1" && cd "$1"
export LVTIME_LEDGER=$PWD/lvtime-ledger.json
[ -f lv.h5 ] || lvtime simulate lv.h5
FIXED="--model smollm2-135m-instruct --context 256 --head numeric --dtype bfloat16 --val-series 20 --steps 80 --forecast-every 40"
t() { local t0=$(date +%s); "$@"; echo "$(( $(date +%s) - t0 )) s: $*" >> walls.txt; }
# the grid: lr 3e-4, 1e-3 (the hand-picked recipe's), 3e-3 at rank 8
t lvtime sweep lv.h5 $FIXED --rank 8 --lr 3e-4,1e-3,3e-3 --set forecast_series=20 --set forecast_batch=20 \
    --out grid --quiet --json > grid.json
# the search: lr on a log range and rank, capped at what the grid spent
python - <<'PY'
import json
ledger = json.load(open("lvtime-ledger.json"))
spent = sum(e["spent_flops"] for e in ledger["entries"] if e["label"].startswith("sweep grid:"))
base = {"data": "lv.h5", "model": "smollm2-135m-instruct", "context": 256, "head": "numeric",
        "dtype": "bfloat16", "val_series": 20, "steps": 80, "forecast_every": 40, "forecast_batch": 20}
json.dump({"out": "search", "search": "tpe", "prune": "asha", "trials": 12, "max_flops": spent,
           "forecast_series": 20, "base": base,
           "space": {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "rank": [4, 8]}},
          open("search-sweep.json", "w"), indent=1)
print("grid spent", f"{spent:.4g}")
PY
t lvtime sweep --config search-sweep.json --quiet --json > search.json
# each one's best configuration (lowest in-training forecast score) on 100 test series
python - <<'PY' > bests.txt
import glob, json
for sweep in ("grid", "search"):
    runs = [json.load(open(p)) | {"dir": p.rsplit("/", 1)[0]} for p in glob.glob(f"{sweep}/*/summary.json")]
    best = min(runs, key=lambda r: r["best_score"] if r.get("best_score") is not None else 1e9)
    print(sweep, best["dir"])
PY
while read -r name dir; do
    t lvtime forecast lv.h5 --adapter "$dir/best" --limit 100 --batch-size 50 --dtype bfloat16 \
        --out "test-$name" --quiet --json > "test-$name.json"
done < bests.txt
