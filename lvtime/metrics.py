"""Forecast accuracy per species, per series and aggregated. numpy only.

For a forecast ``f`` of truth ``y`` over the horizon, and the series' history ``h``:

* MSE = mean (f - y)^2, MAE = mean |f - y|;
* R^2 = 1 - sum (y - f)^2 / sum (y - mean y)^2 (NaN when the truth is constant, as
  for a series that has settled: there is no variance to explain);
* MASE = MAE / mean |h_t - h_{t-1}|: the error relative to the naive last-value
  forecast's one-step error in the history (Hyndman & Koehler, 2006); NaN when the
  history is constant.

With several samples per series the model also gets CRPS (from the samples), the
coverage of its 10-90% band and the band's mean width (:func:`sample_scores`).

Aggregates are the mean and the median over series, ignoring NaN. Reference
forecasts (:mod:`lvtime.references`) are scored the same way so that users see what
the model adds, and how far it is from the limit.
"""

from __future__ import annotations

import warnings

import numpy as np

SPECIES = ("prey", "predator")
METRICS = ("mse", "mae", "r2", "mase")
SAMPLE_METRICS = ("crps", "coverage", "width")


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
        for m in metrics:
            col = metrics[m][:, s]
            ok = col[np.isfinite(col)]
            out[name][m] = {
                "mean": float(ok.mean()) if ok.size else float("nan"),
                "median": float(np.median(ok)) if ok.size else float("nan"),
                "n": int(ok.size),
            }
    return out


def by_horizon(forecasts: dict[str, np.ndarray], truth: np.ndarray, blocks: int = 5) -> dict:
    """Median over series of the MAE in ``blocks`` consecutive parts of the horizon, per
    forecaster and species: ``{"steps": ["1-10", ...], name: {"prey": [...], ...}}``.
    Shows where along the horizon a forecast beats the references (a language model
    often wins the first steps and loses the last ones, where its phase has drifted)."""
    y = np.asarray(truth, dtype=np.float64)
    parts = np.array_split(np.arange(y.shape[1]), min(blocks, y.shape[1]))
    out: dict = {"steps": [f"{p[0] + 1}-{p[-1] + 1}" if len(p) > 1 else f"{p[0] + 1}" for p in parts]}
    for name, f in forecasts.items():
        err = np.abs(np.asarray(f, dtype=np.float64) - y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a series without a value: NaN
            out[name] = {
                species: [float(np.nanmedian(err[:, p, s].mean(axis=1))) for p in parts]
                for s, species in enumerate(SPECIES)
            }
    return out


def sample_scores(samples: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Probabilistic scores of ``samples (N, K, H, 2)`` against ``truth (N, H, 2)``,
    each ``(N, 2)``: CRPS, coverage of the 10-90% band and its mean width.

    CRPS = E|X - y| - E|X - X'| / 2 over the empirical distribution of the K samples,
    averaged over the horizon (equal to the MAE for one sample). Steps a sample failed
    to produce (NaN) are left out.
    """
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)[:, None]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps give NaN, by design
        spread = np.nanmean(np.abs(x[:, :, None] - x[:, None, :]), axis=(1, 2))  # (N, H, 2)
        crps = np.nanmean(np.abs(x - y), axis=1) - 0.5 * spread
        low, high = np.nanquantile(x, [0.1, 0.9], axis=1)
        inside = (y[:, 0] >= low) & (y[:, 0] <= high)
        return {
            "crps": np.nanmean(crps, axis=1),
            "coverage": np.mean(inside, axis=1),
            "width": np.nanmean(high - low, axis=1),
        }


def score(
    forecast: np.ndarray,
    truth: np.ndarray,
    history: np.ndarray,
    references: dict[str, np.ndarray] | None = None,
    samples: np.ndarray | None = None,
) -> dict:
    """Per-series metrics and aggregates for the model and each reference forecast;
    with ``samples`` (more than one per series) the model also gets CRPS, coverage
    and band width."""
    result = {}
    for name, f in {"model": forecast, **(references or {})}.items():
        per = per_series(f, truth, history)
        if name == "model" and samples is not None and samples.shape[1] > 1:
            per.update(sample_scores(samples, truth))
        result[name] = {"per_series": per, "aggregate": aggregate(per)}
    return result


def ranking(agg: dict) -> float:
    """The one score that ranks forecasts: median MASE over series, averaged over prey
    and predator (lower is better); a species whose MASE is undefined (its history is
    constant) is left out, so the score is NaN only when both are."""
    values = [agg[sp]["mase"]["median"] for sp in SPECIES]
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")
