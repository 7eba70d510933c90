#!/usr/bin/env bash
# 100 test series (issue 12 part 5), bf16, batch 50, with the preallocated/shared KV cache.
set -u
cd /tmp/exp
. /work/venv/bin/activate
export LVTIME_CACHE=/tmp/exp/cache HF_HUB_OFFLINE=1 LVTIME_LEDGER=/tmp/exp/ledger.json
M="--model smollm2-135m-instruct"
F="$M --limit 100 --batch-size 50 --dtype bfloat16 --quiet --json"
run() { local name=$1; shift; local t0=$(date +%s); "$@" > "$name.json" 2> "$name.err"; echo "$name rc=$? wall=$(( $(date +%s) - t0 ))s" >> log3.txt; }
run f100-ctx1024 lvtime forecast lv.h5 $F --adapter r-ctx1024/final --out f100-ctx1024
run f100-default lvtime forecast lv.h5 $F --adapter r-default/final --out f100-default
run b100 lvtime baseline lv.h5 $F --out b100
run s100-ctx1024 lvtime forecast lv.h5 $F --adapter r-ctx1024/final --num-samples 10 --temperature 0.7 --out s100-ctx1024
echo done >> log3.txt
