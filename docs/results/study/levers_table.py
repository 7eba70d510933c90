"""The levers' table: python levers_table.py OUT (the folder levers.sh wrote).

Each run's last in-training forecast (40 validation series, greedy) and, first, the
step-0 row (zero-shot) with the references on the same series."""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def cells(name, row, flops):
    p, q = row["prey"], row["predator"]
    return (
        f"| {name} | {flops:.3g} | {row['score']:.2f} | {p['mae']:.3f} | {p['r2']:.2f} | {p['mase']:.2f} | "
        f"{q['mae']:.3f} | {q['r2']:.2f} | {q['mase']:.2f} |"
    )


HEADER = "run | FLOPs (training + validation loss) | median MASE (mean) | prey MAE | prey R² | prey MASE"
print(f"| {HEADER} | pred MAE | pred R² | pred MASE |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
first = True
for run in sorted(p.parent for p in out.glob("*/metrics.jsonl")):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "forecast_score" in r]
    if len(evals) < 2:  # still running
        continue
    if first:
        for ref, species in evals[0]["reference_species"].items():
            print(cells(ref, {"score": evals[0]["references"][ref], **species}, 0))
        print(cells("zero-shot", {"score": evals[0]["forecast_score"], **evals[0]}, 0))
        first = False
    last = evals[-1]
    trained = last["flops"] - sum(r["forecast_flops"] for r in evals)
    print(cells(run.name, {"score": last["forecast_score"], **last}, trained))
