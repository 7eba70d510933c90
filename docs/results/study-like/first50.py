"""The first 50 of the 100 test series, where the ~1e15 adapter was also sampled: every
forecast rescored from its forecasts.npz (median over series, prey / predator)."""

import os
import sys

import numpy as np

from lvtime import metrics

ROOT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/exp"
N = 50
RUNS = [
    ("last_value", "f100-1e15", "reference_last_value"),
    ("seasonal", "f100-1e15", "reference_seasonal"),
    ("ode", "f100-1e15", "reference_ode"),
    ("ctx 1024, 3.0e14, greedy", "f100-ctx1024", "forecast"),
    ("ctx 1024, 3.0e14, 10-sample median", "s100-ctx1024", "forecast"),
    ("today's recipe (ctx 256), 1.0e15, greedy", "f100-default-1e15", "forecast"),
    ("today's recipe (ctx 256), 1.0e15, 10-sample median", "s50-default-1e15", "forecast"),
    ("ctx 1024, 1.0e15, greedy", "f100-1e15", "forecast"),
    ("ctx 1024, 1.0e15, 10-sample median", "s50-1e15", "forecast"),
]


def pair(agg, m):
    return f"{agg['prey'][m]['median']:.3g} / {agg['predator'][m]['median']:.3g}"


print("| forecast (first 50 series) | MAE | R² | MASE | CRPS | 10–90% coverage |")
print("|---|---:|---:|---:|---:|---:|")
for label, folder, key in RUNS:
    path = f"{ROOT}/{folder}/forecasts.npz"
    if not os.path.exists(path):
        continue
    saved = np.load(path)
    assert list(saved["series"][:N]) == list(range(900, 900 + N)), "not the same series"
    y, h = saved["truth"][:N], saved["history"][:N]
    per = metrics.per_series(saved[key][:N], y, h)
    samples = saved["samples"][:N] if key == "forecast" and "samples" in saved.files else None
    if samples is not None and samples.ndim == 4 and samples.shape[1] > 1:
        per.update(metrics.sample_scores(samples, y))
    agg = metrics.aggregate(per)
    crps = pair(agg, "crps") if "crps" in agg["prey"] else ""
    cover = pair(agg, "coverage") if "coverage" in agg["prey"] else ""
    print(f"| {label} | {pair(agg, 'mae')} | {pair(agg, 'r2')} | {pair(agg, 'mase')} | {crps} | {cover} |")
