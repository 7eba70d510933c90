"""The docs table: model runs from their metrics.json, references recomputed on the same series."""
import json, os
import numpy as np
from lvtime import data, metrics, references

ds = data.load_dataset("/tmp/exp/lv.h5")
idx = data.split_indices(ds.n_series)["test"][:20]
tr = ds.trajectories[idx]
h, y = tr[:, :50], tr[:, 50:]
refs, info = references.compute(h, 50, ds.time[1] - ds.time[0])
rows = []
def fmt(agg, sp, m):
    return agg[sp][m]["median"]
for name, f in refs.items():
    per = metrics.per_series(f, y, h)
    agg = metrics.aggregate(per)
    rows.append((name, agg, None, None))
runs = [("zero-shot", "base", None), ("LoRA, today's recipe (ctx 256, 300 steps)", "f-default", "r-default"),
        ("+ alpha from history, step-aligned windows", "f-aligned", "r-aligned"),
        ("+ context 1024 (75 steps)", "f-ctx1024", "r-ctx1024"),
        ("today's recipe, 10-sample median (T 0.7)", "s-default", "r-default")]
for label, fc, tr_ in runs:
    p = f"/tmp/exp/{fc}.json"
    if not os.path.exists(p) or not os.path.getsize(p): continue
    d = json.load(open(p))
    train = json.load(open(f"/tmp/exp/{tr_}.json")) if tr_ else None
    rows.append((label, d["metrics"]["model"], train["flops_total"] if train else 0.0, d["flops"]))
print("| forecaster | prey MAE | prey R² | prey MASE | predator MAE | predator R² | predator MASE | CRPS prey / pred | training FLOPs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for label, agg, tf, ff in rows:
    crps = f"{fmt(agg,'prey','crps'):.3f} / {fmt(agg,'predator','crps'):.3f}" if "crps" in agg["prey"] else ""
    tfs = "" if tf is None else (f"{tf:.2e}".replace("e+", "e") if tf else "0")
    print(f"| {label} | {fmt(agg,'prey','mae'):.3f} | {fmt(agg,'prey','r2'):.2f} | {fmt(agg,'prey','mase'):.2f} | "
          f"{fmt(agg,'predator','mae'):.3f} | {fmt(agg,'predator','r2'):.2f} | {fmt(agg,'predator','mase'):.2f} | {crps} | {tfs} |")
print(info)
