#!/usr/bin/env bash
# A small study in a fresh folder, for `lvtime report`'s screenshot (docs/report.md):
# a baseline, two fine-tuning runs, a forecast of each, a small sweep ranked by forecasts.
#   bash docs/results/report/study.sh DIR [MODEL]      (MODEL: smollm2-135m-instruct)
set -eu
dir=$1; model=${2:-smollm2-135m-instruct}
mkdir -p "$dir" && cd "$dir"
export LVTIME_LEDGER=$PWD/lvtime-ledger.json
lvtime simulate lv.h5 --n 100 --points 60 --force
C="--model $model --context 256 --batch-size 4 --val-series 4 --dtype bfloat16 --head numeric --quiet"
F="--history 30 --horizon 30 --limit 6 --batch-size 6 --quiet"
lvtime baseline lv.h5 --model $model $F --out runs/baseline
lvtime finetune lv.h5 $C --rank 8 --lr 1e-3 --steps 30 --out runs/r8-lr1e-3
lvtime forecast lv.h5 $F --adapter runs/r8-lr1e-3/final --out runs/r8-lr1e-3/forecast
lvtime finetune lv.h5 $C --rank 4 --lr 1e-4 --steps 15 --out runs/r4-lr1e-4
lvtime forecast lv.h5 $F --adapter runs/r4-lr1e-4/final --out runs/r4-lr1e-4/forecast
lvtime sweep lv.h5 $C --rank 2,8 --lr 1e-3 --steps 10 --history 30 --rank-by forecast --forecast-series 4 --out runs/sweep
lvtime report . -o report.html
