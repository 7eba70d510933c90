#!/usr/bin/env bash
# ~1e15 training FLOPs (issue 12 part 5), as run: two adapters of run.sh continued with
# `finetune --resume --steps N` (constant lr, so continuing equals a longer run), copies kept
# beside the originals; then 100 test series, bf16, batch 50. Each stage waited for the one before.
set -u
cd /tmp/exp
. /work/venv/bin/activate
export LVTIME_CACHE=/tmp/exp/cache HF_HUB_OFFLINE=1 LVTIME_LEDGER=/tmp/exp/ledger.json
M="--model smollm2-135m-instruct"
F="$M --limit 100 --batch-size 50 --dtype bfloat16 --quiet --json"
run() { local name=$1; shift; local t0=$(date +%s); "$@" > "$name.json" 2> "$name.err"; echo "$name rc=$? wall=$(( $(date +%s) - t0 ))s $(date +%T)" >> log4.txt; }
# ctx 1024, alpha from history, step windows: 75 -> 258 steps (9.98e14 training FLOPs)
cp -a r-ctx1024 r-ctx1024-1e15
run r-ctx1024-1e15 lvtime finetune --resume r-ctx1024-1e15 --steps 258 --quiet --json
run f100-1e15 lvtime forecast lv.h5 $F --adapter r-ctx1024-1e15/final --out f100-1e15
# (this one was stopped by SIGTERM after 7 minutes; see the end)
run s100-1e15 lvtime forecast lv.h5 $F --adapter r-ctx1024-1e15/final --num-samples 10 --temperature 0.7 --out s100-1e15
# the alignment levers alone at ctx 256 (run.sh's r-aligned), 100 series
run f100-aligned lvtime forecast lv.h5 $F --adapter r-aligned/final --out f100-aligned
# today's recipe (ctx 256, r8, lr 1e-3): 300 -> 1256 steps (1.0e15 training FLOPs)
cp -a r-default r-default-1e15
run r-default-1e15 lvtime finetune --resume r-default-1e15 --steps 1256 --quiet --json
run f100-default-1e15 lvtime forecast lv.h5 $F --adapter r-default-1e15/final --out f100-default-1e15
# the ~1e15 ctx-1024 adapter sampled (10 at T 0.7) on the first 50 test series: the 100-series
# sampled run above was stopped (SIGTERM) after 7 minutes to leave CPU time for the ctx-256 run
run s50-1e15 lvtime forecast lv.h5 ${F/--limit 100/--limit 50} --adapter r-ctx1024-1e15/final --num-samples 10 --temperature 0.7 --out s50-1e15
# the ~1e15 ctx-256 adapter (best greedy) sampled the same way, on the same 50 series
run s50-default-1e15 lvtime forecast lv.h5 ${F/--limit 100/--limit 50} --adapter r-default-1e15/final --num-samples 10 --temperature 0.7 --out s50-default-1e15
