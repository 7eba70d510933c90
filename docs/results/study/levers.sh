#!/usr/bin/env bash
# Issue 25's levers at equal FLOPs on the study's data: the README recipe shortened to
# 65 steps (2.5e14 training FLOPs), alone, with the same recipe plus one lever each
# (species: one alpha per species instead of one per series; combined: the three at once).
# Every run forecasts the first 40 validation series (630-669) greedy at step 0 and at
# the end (in-training forecasts, logged in metrics.jsonl and kept in best/).
#   bash docs/results/study/levers.sh STUDY.h5 LIKE.h5 OUT
# LIKE.h5: `lvtime simulate LIKE.h5 --like STUDY.h5 --like-split train --n 3150 --seed 1`
# (fitted on the train split, series 0-629, alone: no validation or test series is seen).
set -euo pipefail
DATA=$1 LIKE=$2 OUT=$3
mkdir -p "$OUT"
common=(--model smollm2-135m-instruct --rank 8 --lr 1e-3 --context 1024 --batch-size 4 --steps 65
        --alpha-from history --window-starts steps --dtype bfloat16 --head numeric --val-series 20
        --forecast-every 65 --forecast-series 40 --ledger "$OUT/lvtime-ledger.json" --quiet)
[ -e "$OUT/lvtime-ledger.json" ] || lvtime ledger init --budget 1e17 --ledger "$OUT/lvtime-ledger.json"
run() { local name=$1; shift; [ -e "$OUT/$name/final" ] || lvtime finetune "$DATA" "${common[@]}" --out "$OUT/$name" "$@"; }
run base
run extra5x --extra-train "$LIKE"
run horizon --loss-on horizon
run species --scale species
run combined --loss-on horizon --scale species --extra-train "$LIKE"
