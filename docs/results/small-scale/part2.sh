set -e
export PATH=/work/main/.venv/bin:$PATH
M="--model smollm2-135m-instruct --dtype bfloat16 --head numeric --val-series 10 --quiet"
lvtime sweep $M --set rank=8 --set lr=1e-3 --contexts 128,512 --steps 30 --eval-every 15 --out runs/sweep-context
lvtime finetune $M --rank 8 --lr 1e-3 --context 256 --steps 100 --eval-every 50 --out runs/final --label "final r8 lr1e-3"
lvtime forecast --adapter runs/final/final --dtype bfloat16 --limit 10 --batch-size 10 --out runs/final/forecast --quiet
lvtime ledger export --format md -o flops-table.md
lvtime ledger
