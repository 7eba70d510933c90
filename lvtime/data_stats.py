"""What a predator-prey dataset looks like, in numbers a forecaster cares about
(``lvtime stats``): how fast it oscillates, how much it moves, whether the swings
decay, how large the predator is against the prey, and how hard seasonal naive finds it.

Each statistic is one :class:`Statistic` entry; :data:`STUDY` holds their values on the
study's data, which ``lvtime simulate``'s defaults are tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PAD = 8  # zero-padding of the spectrum: periods on a grid 8x finer than length / k


def _periods(traj: np.ndarray) -> np.ndarray:
    """Each series' dominant prey period in steps: the strongest non-zero frequency of
    the mean-removed series. Zero-padded, so that a period is not rounded to the series'
    length over a whole number (100 steps would allow only 16.7, 20, 25, 33...), which
    would make its percentiles jump by 20% between neighbouring values."""
    x = traj[:, :, 0] - traj[:, :, 0].mean(axis=1, keepdims=True)
    n_fft = PAD * traj.shape[1]
    power = np.abs(np.fft.rfft(x, n=n_fft, axis=1))
    lowest = PAD  # frequencies below one cycle over the series are not periods
    periods = n_fft / (lowest + np.argmax(power[:, lowest:], axis=1))
    return np.where(x.std(axis=1) > 0, periods, np.nan)  # a constant series has none


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def _cv(traj: np.ndarray, species: int) -> float:
    s = traj[:, :, species]
    return float(np.nanmedian(_ratio(s.std(axis=1), s.mean(axis=1))))


def _decay(traj: np.ndarray, species: int) -> float:
    half = traj.shape[1] // 2
    s = traj[:, :, species]
    return float(np.nanmedian(_ratio(s[:, half:].std(axis=1), s[:, :half].std(axis=1))))


def _predator_over_prey(traj: np.ndarray) -> float:
    p95 = np.percentile(traj, 95, axis=1)
    return float(np.nanmedian(_ratio(p95[:, 1], p95[:, 0])))


def _seasonal_mase(traj: np.ndarray) -> float:
    from lvtime import metrics, references

    half = traj.shape[1] // 2
    history, truth = traj[:, :half], traj[:, half:]
    mase = metrics.per_series(references.seasonal(history, traj.shape[1] - half), truth, history)["mase"]
    return float(np.mean([np.nanmedian(mase[:, s]) for s in range(2)]))


@dataclass(frozen=True)
class Statistic:
    name: str
    label: str
    compute: Callable[[np.ndarray], float]


def _period_percentile(q: int) -> Statistic:
    label = f"prey period, {q}th percentile (steps)"
    return Statistic(f"period_p{q}", label, lambda t: float(np.nanpercentile(_periods(t), q)))


STATISTICS = (
    *(_period_percentile(q) for q in (10, 25, 50, 75, 90)),
    Statistic("cv_prey", "coefficient of variation, prey (median)", lambda t: _cv(t, 0)),
    Statistic("cv_predator", "coefficient of variation, predator (median)", lambda t: _cv(t, 1)),
    Statistic("decay_prey", "std 2nd half / 1st half, prey (median)", lambda t: _decay(t, 0)),
    Statistic("decay_predator", "std 2nd half / 1st half, predator (median)", lambda t: _decay(t, 1)),
    Statistic("predator_over_prey", "predator P95 / prey P95 (median)", _predator_over_prey),
    Statistic("seasonal_mase", "seasonal naive MASE, 1st half -> 2nd (median, mean of species)", _seasonal_mase),
)

# The study's first 900 series (../shared/data/study_series_0-899.h5, the study's
# lotka_volterra_data.h5 without its last 100), measured with `lvtime stats` (docs/data.md).
STUDY = {
    "period_p10": 15.686,
    "period_p25": 17.778,
    "period_p50": 21.053,
    "period_p75": 25.806,
    "period_p90": 29.630,
    "cv_prey": 0.449,
    "cv_predator": 0.482,
    "decay_prey": 0.770,
    "decay_predator": 0.762,
    "predator_over_prey": 0.397,
    "seasonal_mase": 1.087,
}


def describe(trajectories: np.ndarray) -> dict[str, float]:
    """Every statistic of ``(N, T, 2)`` trajectories, by name (NaN where no series has it)."""
    import warnings

    traj = np.asarray(trajectories, dtype=np.float64)
    with warnings.catch_warnings():  # a statistic no series has (all constant) is NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return {s.name: s.compute(traj) for s in STATISTICS}
