"""Median and mean of a sampled forecast's samples, scored: python samples.py FORECAST_DIR.

`lvtime forecast --num-samples K` scores the median of the K samples; this scores their
mean too, from the forecasts.npz it wrote (no model needed)."""

import sys

import numpy as np

from lvtime import metrics

run = np.load(f"{sys.argv[1]}/forecasts.npz")
history, truth, samples = run["history"], run["truth"], run["samples"]  # samples: (N, K, H, 2)
for name, forecast in (("median", np.nanmedian(samples, axis=1)), ("mean", np.nanmean(samples, axis=1))):
    agg = metrics.aggregate(metrics.per_series(forecast, truth, history))
    cells = [f"{sp} MAE {agg[sp]['mae']['median']:.3f} R2 {agg[sp]['r2']['median']:.3f}" for sp in metrics.SPECIES]
    print(f"{name} of {samples.shape[1]} samples: " + ", ".join(cells))
