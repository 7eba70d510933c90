set -e
export PATH=/work/main/.venv/bin:$PATH
lvtime simulate lotka_volterra_data.h5
lvtime ledger init --budget 1e15
M="--model smollm2-135m-instruct --dtype bfloat16 --head numeric --val-series 10 --quiet"
lvtime baseline --model smollm2-135m-instruct --dtype bfloat16 --limit 10 --batch-size 10 --out runs/baseline --quiet
lvtime finetune $M --context 256 --steps 30 --eval-every 15 --out runs/default --label "default r4 lr1e-5"
lvtime sweep $M --set context=256 --ranks 2,8 --lrs 1e-4,1e-3 --steps 30 --eval-every 15 --out runs/sweep-rank-lr
