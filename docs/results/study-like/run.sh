#!/usr/bin/env bash
# Forecast quality per FLOP on study-like simulated data, SmolLM2-135M on a 2-core CPU.
set -u
cd /tmp/exp
. /work/venv/bin/activate
export LVTIME_CACHE=/tmp/exp/cache HF_HUB_OFFLINE=1 LVTIME_LEDGER=/tmp/exp/ledger.json
[ -f lv.h5 ] || lvtime simulate lv.h5
M="--model smollm2-135m-instruct"
F="$M --limit 20 --batch-size 20 --quiet --json"
T="$M --rank 8 --head numeric --dtype bfloat16 --val-series 20 --quiet --json"
stamp() { date +%s; }
run() { local name=$1; shift; local t0=$(stamp); "$@" > "$name.json" 2> "$name.err"; echo "$name rc=$? wall=$(( $(stamp) - t0 ))s" >> log.txt; }
[ -f base.json ] || run base lvtime baseline lv.h5 $F --out base
# today's recommended small-scale recipe (reproduce.md): r8, lr 1e-3, context 256, 300 steps (~2.5e14)
run r-default lvtime finetune lv.h5 $T --lr 1e-3 --context 256 --steps 300 --out r-default
run f-default lvtime forecast lv.h5 $F --adapter r-default/final --out f-default
# forecast-aligned data: alpha from the 50-step history, windows from step boundaries
run r-aligned lvtime finetune lv.h5 $T --lr 1e-3 --context 256 --steps 300 --alpha-from history --window-starts steps --out r-aligned
run f-aligned lvtime forecast lv.h5 $F --adapter r-aligned/final --out f-aligned
# context that spans a whole forecast (history + horizon ~ 1,150 tokens), same FLOPs
run r-ctx1024 lvtime finetune lv.h5 $T --lr 1e-3 --context 1024 --steps 75 --alpha-from history --window-starts steps --out r-ctx1024
run f-ctx1024 lvtime forecast lv.h5 $F --adapter r-ctx1024/final --out f-ctx1024
echo done >> log.txt
