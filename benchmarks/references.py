"""Each reference forecaster's median scores and time on a dataset's series.

    python benchmarks/references.py DATA.h5 [--first 810] [--count 50] [--history 50]

Prints one line per reference of lvtime's table that is installed (prey / predator).
"""

from __future__ import annotations

import argparse
import time

from lvtime import metrics, reference_table, references
from lvtime.data import load_dataset, time_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--first", type=int, default=810)
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--history", type=int, default=50)
    args = ap.parse_args()
    ds = load_dataset(args.data)
    series = ds.trajectories[args.first : args.first + args.count]
    h, truth = series[:, : args.history], series[:, args.history :]
    for name in reference_table.available():
        t0 = time.perf_counter()
        forecast, _ = references.compute(h, truth.shape[1], time_step(ds), [name])
        took = time.perf_counter() - t0
        agg = metrics.aggregate(metrics.per_series(forecast[name], truth, h))
        cols = [" / ".join(f"{agg[sp][m]['median']:.3f}" for sp in metrics.SPECIES) for m in ("mae", "r2", "mase")]
        print(f"{reference_table.label(name):15s} MAE {cols[0]}  R² {cols[1]}  MASE {cols[2]}  {took:.1f} s")


if __name__ == "__main__":
    main()
