"""Where along the horizon the forecasts of the 100-series table win and lose: median MAE
over the first and last 10 steps, median R² over the first 10 and 20 steps, the share of
forecasts that are flat over their last 25 steps, and the amplitude (forecast std / true
std). Reads the forecasts.npz of each `lvtime forecast --out` folder in ROOT."""

import os
import sys

import numpy as np

ROOT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/exp"
RUNS = {
    "last_value": ("f100-1e15", "reference_last_value"),
    "seasonal": ("f100-1e15", "reference_seasonal"),
    "today's recipe, 2.5e14": ("f100-default", "forecast"),
    "today's recipe, 1e15": ("f100-default-1e15", "forecast"),
    "aligned ctx 256, 2.5e14": ("f100-aligned", "forecast"),
    "ctx 1024, 3e14": ("f100-ctx1024", "forecast"),
    "ctx 1024, 3e14, 10-sample median": ("s100-ctx1024", "forecast"),
    "ctx 1024, 1e15": ("f100-1e15", "forecast"),
}


def r2(f, y):
    return 1 - ((f - y) ** 2).sum(1) / ((y - y.mean(1, keepdims=True)) ** 2).sum(1)


def pair(x):
    return f"{x[0]:.3g} / {x[1]:.3g}"


print(
    "| forecast (prey / predator) | MAE steps 1-10 | MAE steps 41-50 | R² steps 1-10 | R² steps 1-20 "
    "| flat late | amplitude |"
)
print("|---|---:|---:|---:|---:|---:|---:|")
for label, (folder, key) in RUNS.items():
    path = f"{ROOT}/{folder}/forecasts.npz"
    if not os.path.exists(path):
        continue
    saved = np.load(path)
    f, y = saved[key], saved["truth"]
    err = np.abs(f - y)
    flat = (f[:, 25:].std(1) < 0.1 * y[:, 25:].std(1)).mean(0)
    amplitude = np.median(f.std(1) / np.maximum(y.std(1), 1e-9), 0)
    print(
        f"| {label} | {pair(np.median(err[:, :10].mean(1), 0))} | {pair(np.median(err[:, -10:].mean(1), 0))} | "
        f"{pair(np.median(r2(f[:, :10], y[:, :10]), 0))} | {pair(np.median(r2(f[:, :20], y[:, :20]), 0))} | "
        f"{pair(flat)} | {pair(amplitude)} |"
    )
