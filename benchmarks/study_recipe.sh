#!/usr/bin/env bash
# The README's recommended recipe, end to end, on any dataset in the study's layout:
# fine-tune on its train split, forecast the first 50 test series greedy and with the
# recommended 10 samples, and write OUT/quality.json (medians over the series).
#
#   bash benchmarks/study_recipe.sh DATA OUT
#
# Uses the `lvtime` on PATH. Re-running with the same OUT resumes an interrupted
# fine-tune and redoes the forecasts. The sizes below can be changed through the
# environment (the test suite runs it with a tiny model and a few steps):
#   MODEL STEPS CONTEXT BATCH DTYPE HEAD SERIES SAMPLES TEMPERATURE HISTORY HORIZON TRAIN_ARGS
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: bash benchmarks/study_recipe.sh DATA OUT" >&2
    exit 2
fi
DATA=$1
OUT=$2
MODEL=${MODEL:-smollm2-135m-instruct}
STEPS=${STEPS:-258}           # 1e15 training FLOPs at the shape below (lvtime flops)
CONTEXT=${CONTEXT:-1024}
BATCH=${BATCH:-4}
DTYPE=${DTYPE:-bfloat16}
HEAD=${HEAD:-numeric}
SERIES=${SERIES:-50}          # the first SERIES test series
SAMPLES=${SAMPLES:-10}        # the README's forecast: the median of 10 samples
TEMPERATURE=${TEMPERATURE:-0.3}  # chosen on validation series (docs/benchmarks.md)
HISTORY=${HISTORY:-50}        # the study's 50 -> 50 forecast
HORIZON=${HORIZON:-50}
read -r -a EXTRA <<< "${TRAIN_ARGS:-}"

mkdir -p -- "$OUT"
LEDGER=("--ledger" "$OUT/lvtime-ledger.json")
[ -e "$OUT/lvtime-ledger.json" ] || lvtime ledger init --budget 1e17 "${LEDGER[@]}" >/dev/null

train=(lvtime finetune "$DATA" --model "$MODEL" --rank 8 --lr 1e-3 --context "$CONTEXT" --batch-size "$BATCH"
       --steps "$STEPS" --alpha-from history --window-starts steps --scale species --dtype "$DTYPE" --head "$HEAD"
       --val-series 20 --out "$OUT/run" "${LEDGER[@]}" "${EXTRA[@]}")
if [ -e "$OUT/run/final" ]; then
    echo "study_recipe: $OUT/run/final exists, not training again" >&2
elif [ -e "$OUT/run" ]; then
    "${train[@]}" --resume
else
    "${train[@]}"
fi

forecast=(lvtime forecast "$DATA" --adapter "$OUT/run/final" --split test --limit "$SERIES" --dtype "$DTYPE"
          --history "$HISTORY" --horizon "$HORIZON" --force "${LEDGER[@]}")
"${forecast[@]}" --out "$OUT/greedy" --quiet
"${forecast[@]}" --out "$OUT/sampled" --num-samples "$SAMPLES" --temperature "$TEMPERATURE" --quiet

python3 - "$OUT" <<'PY'
import csv
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
summary = json.loads((out / "run" / "summary.json").read_text())
greedy = json.loads((out / "greedy" / "metrics.json").read_text())
sampled = json.loads((out / "sampled" / "metrics.json").read_text())


def medians(agg):
    return {sp: {m: agg[sp][m]["median"] for m in ("mae", "r2", "mase")} for sp in ("prey", "predator")}


quality = {
    "training_flops": summary["flops_total"],
    "series": list(dict.fromkeys(int(r["series"]) for r in csv.DictReader(open(out / "sampled" / "per_series.csv")))),
    "model": medians(sampled["metrics"]["model"]),
    "model_is": f"median of {sampled['num_samples']} samples",
    "model_greedy": medians(greedy["metrics"]["model"]),
    "references": {k: medians(v) for k, v in sampled["metrics"].items() if k != "model"},
    "forecast_flops": {"greedy": greedy["flops"], "sampled": sampled["flops"]},
    "parse_failures": {"greedy": greedy["parse_failures"], "sampled": sampled["parse_failures"]},
    "wall_s_training": summary["wall_s"],
}
(out / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
m = quality["model"]
print(f"study_recipe: {out / 'quality.json'}: median R2 prey {m['prey']['r2']:.3f}, predator {m['predator']['r2']:.3f}")
PY
