"""The 100-series table (issue 12 part 5): model runs from their --json reports, the
references recomputed on the same 100 test series of lv.h5 (lvtime simulate defaults)."""

import json
import os
import sys

from lvtime import data, metrics, references

ROOT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/exp"
ds = data.load_dataset(f"{ROOT}/lv.h5")
idx = data.split_indices(ds.n_series)["test"][:100]
tr = ds.trajectories[idx]
h, y = tr[:, :50], tr[:, 50:]
refs, info = references.compute(h, 50, ds.time[1] - ds.time[0])
rows = [(name, metrics.aggregate(metrics.per_series(f, y, h)), None, None) for name, f in refs.items()]
runs = [
    ("zero-shot (bf16)", "b100", None),
    ("LoRA, today's recipe: ctx 256, 300 steps", "f100-default", "r-default"),
    ("LoRA, ctx 1024, 75 steps, alpha from history, step windows", "f100-ctx1024", "r-ctx1024"),
    ("same ctx-1024 adapter, 10-sample median (T 0.7)", "s100-ctx1024", "r-ctx1024"),
    ("LoRA, ctx 256, 300 steps, alpha from history, step windows", "f100-aligned", "r-aligned"),
    ("LoRA, today's recipe continued to 1,256 steps", "f100-default-1e15", "r-default-1e15"),
    ("LoRA, ctx 1024 ... continued to 258 steps", "f100-1e15", "r-ctx1024-1e15"),
    ("same 258-step adapter, 10-sample median (T 0.7)", "s100-1e15", "r-ctx1024-1e15"),
]
walls = {}  # from run*.sh's logs: "name rc=0 wall=406s [time]"
for log in ("log3.txt", "log4.txt", "log5.txt", "log6.txt"):
    if os.path.exists(f"{ROOT}/{log}"):
        for line in open(f"{ROOT}/{log}"):
            if "wall=" in line:
                walls[line.split()[0]] = line.split("wall=")[1].split()[0]
for label, fc, train in runs:
    path = f"{ROOT}/{fc}.json"
    if not os.path.exists(path) or not os.path.getsize(path):
        continue
    d = json.load(open(path))
    t = json.load(open(f"{ROOT}/{train}.json"))["flops_total"] if train else 0.0
    rows.append((label, d["metrics"]["model"], t, {**d, "wall": walls.get(fc, "")}))


def med(agg, sp, m):
    return agg[sp][m]["median"]


print("| forecaster | prey MAE | prey R² | prey MASE | pred MAE | pred R² | pred MASE | CRPS prey / pred "
      "| training FLOPs | forecast FLOPs | forecast wall |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for label, agg, tf, d in rows:
    crps = f"{med(agg, 'prey', 'crps'):.3f} / {med(agg, 'predator', 'crps'):.3f}" if "crps" in agg["prey"] else ""
    tfs = "" if tf is None else (f"{tf:.2e}".replace("e+", "e") if tf else "0")
    ff = f"{d['flops']:.2e}".replace("e+", "e") if d else ""
    wall = d["wall"] if d else ""
    print(f"| {label} | {med(agg, 'prey', 'mae'):.3f} | {med(agg, 'prey', 'r2'):.2f} | {med(agg, 'prey', 'mase'):.2f} | "
          f"{med(agg, 'predator', 'mae'):.3f} | {med(agg, 'predator', 'r2'):.2f} | {med(agg, 'predator', 'mase'):.2f} | "
          f"{crps} | {tfs} | {ff} | {wall} |")
print(info)
