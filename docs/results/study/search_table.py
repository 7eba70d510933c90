"""A search's table: python search_table.py SEARCH (the folder lvtime sweep --search wrote).

One row per trial, in trial order: its options, its steps and FLOPs, and its best
in-training forecast (greedy, the sweep's validation series) with the step it came at."""

import json
import sys
from pathlib import Path

OPTIONS = ("lr", "rank", "context", "batch_size", "scale", "extra_train", "loss_on")
out = Path(sys.argv[1])
rows = {r["run"]: r for r in json.loads((out / "results.json").read_text())}


def shown(key, value):
    if key == "lr":
        return f"{value:.1e}"
    if key == "extra_train":
        return "5× like" if value else "none"
    return str(value)


print(f"| trial | {' | '.join(OPTIONS)} | steps | FLOPs | median MASE (step) | prey MAE | prey R² | pred MAE | pred R² |")
print("|---|" + "---:|" * (len(OPTIONS) + 8))
for name in sorted(rows, key=lambda n: int(n.split("-")[1])):
    r = rows[name]
    evals = [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines() if "forecast_score" in x]
    best = min(evals[1:], key=lambda e: e["forecast_score"])
    p, q = best["prey"], best["predator"]
    mark = " (pruned)" if r["pruned"] else ""
    print(
        f"| {name}{mark} | {' | '.join(shown(k, r.get(k)) for k in OPTIONS)} | {r['steps']} | {r['flops']:.3g} | "
        f"{best['forecast_score']:.2f} ({best['step']}) | {p['mae']:.3f} | {p['r2']:.2f} | {q['mae']:.3f} | {q['r2']:.2f} |"
    )
