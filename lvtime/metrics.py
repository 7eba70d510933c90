"""Forecast accuracy per species, per series and aggregated. numpy only.

For a forecast ``f`` of truth ``y`` over the horizon, and the series' history ``h``:

* MSE = mean (f - y)^2, MAE = mean |f - y|;
* R^2 = 1 - sum (y - f)^2 / sum (y - mean y)^2 (NaN when the truth is constant, as
  for a series that has settled: there is no variance to explain);
* MASE = MAE / mean |h_t - h_{t-1}|: the error relative to the naive last-value
  forecast's one-step error in the history (Hyndman & Koehler, 2006); NaN when the
  history is constant.

Aggregates are the mean and the median over series, ignoring NaN. Reference
forecasts (last value, linear extrapolation) are scored the same way so that users
see what the model adds.
"""

from __future__ import annotations

import numpy as np

SPECIES = ("prey", "predator")
METRICS = ("mse", "mae", "r2", "mase")


def per_series(forecast: np.ndarray, truth: np.ndarray, history: np.ndarray) -> dict[str, np.ndarray]:
    """Metric arrays of shape ``(N, 2)`` (series x species) for ``(N, H, 2)`` inputs."""
    f, y, h = (np.asarray(a, dtype=np.float64) for a in (forecast, truth, history))
    err = f - y
    mse = np.mean(err**2, axis=1)
    mae = np.mean(np.abs(err), axis=1)
    ss_tot = np.sum((y - y.mean(axis=1, keepdims=True)) ** 2, axis=1)
    ss_res = np.sum(err**2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.nan)
        scale = np.mean(np.abs(np.diff(h, axis=1)), axis=1) if h.shape[1] > 1 else np.full_like(mae, np.nan)
        mase = np.where(scale > 0, mae / np.where(scale > 0, scale, 1), np.nan)
    return {"mse": mse, "mae": mae, "r2": r2, "mase": mase}


def aggregate(metrics: dict[str, np.ndarray]) -> dict[str, dict[str, dict[str, float]]]:
    """``{species: {metric: {"mean", "median"}}}``, ignoring NaN (series without a value)."""
    out: dict = {}
    for s, name in enumerate(SPECIES):
        out[name] = {}
        for m in METRICS:
            col = metrics[m][:, s]
            ok = col[np.isfinite(col)]
            out[name][m] = {
                "mean": float(ok.mean()) if ok.size else float("nan"),
                "median": float(np.median(ok)) if ok.size else float("nan"),
                "n": int(ok.size),
            }
    return out


def last_value(history: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat each series' last observed value."""
    return np.repeat(history[:, -1:, :], horizon, axis=1)


def linear(history: np.ndarray, horizon: int, window: int = 5) -> np.ndarray:
    """Extend the least-squares line through the last ``window`` steps; clipped at 0."""
    h = np.asarray(history, dtype=np.float64)
    w = min(window, h.shape[1])
    t = np.arange(w, dtype=np.float64)
    tail = h[:, -w:, :]
    if w == 1:
        return last_value(h, horizon)
    t_mean = t.mean()
    slope = np.sum((t - t_mean)[None, :, None] * (tail - tail.mean(axis=1, keepdims=True)), axis=1)
    slope /= np.sum((t - t_mean) ** 2)
    intercept = tail.mean(axis=1) - slope * t_mean
    future = np.arange(w, w + horizon, dtype=np.float64)
    pred = intercept[:, None, :] + slope[:, None, :] * future[None, :, None]
    return np.maximum(pred, 0.0)


def evaluate(forecast: np.ndarray, truth: np.ndarray, history: np.ndarray) -> dict:
    """Per-series metrics and aggregates for the model and the reference forecasts."""
    horizon = truth.shape[1]
    result = {}
    for name, f in (
        ("model", forecast),
        ("last_value", last_value(history, horizon)),
        ("linear", linear(history, horizon)),
    ):
        per = per_series(f, truth, history)
        result[name] = {"per_series": per, "aggregate": aggregate(per)}
    return result
