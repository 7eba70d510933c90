"""Simulated predator-prey datasets: the study's equations with drawn parameters
(``lvtime simulate``), or parameters fitted to a dataset's series (``simulate --like``).
numpy (scipy for ``--like``'s fit), no torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lvtime.data import Dataset, validate
from lvtime.errors import DataError, UsageError

# Parameter ranges, drawn uniformly per series, in two sets.
#
# "study" (the default) is the study's own: fitting the Rosenzweig-MacArthur equations to
# each of the study's first 900 series (the ODE reference's fitter, full 100 steps, every
# fit within 3% RMSE) gives parameters spread evenly over these boxes and nowhere else,
# initial states uniform on 0.8-1.2, and a saturation a*h (not h) uniform on 0.05-0.2:
# fitted h correlates with a at -0.63, a*h with a at -0.06. docs/data.md has the numbers.
# "fast" is lvtime's first set: periods of about 7-9 steps and larger predator swings;
# measurements on it did not transfer to the study's data.
LV_RANGES = {  # dx = a x - b x y ; dy = d x y - g y  (closed orbits: oscillates forever)
    "a": (0.4, 1.0),
    "b": (0.3, 0.7),
    "d": (0.2, 0.6),
    "g": (0.4, 1.0),
}
RM_RANGES = {  # dx = r x (1 - x/K) - a x y / (1 + a h x) ; dy = e a x y / (1 + a h x) - m y
    "r": (0.5, 1.5),
    "K": (2.0, 8.0),
    "a": (0.5, 1.5),
    "h": (0.2, 1.0),
    "e": (0.4, 1.0),
    "m": (0.2, 0.6),
}
STUDY_LV_RANGES = {k: (0.4 * lo, 0.4 * hi) for k, (lo, hi) in LV_RANGES.items()}
STUDY_RM_RANGES = {
    "r": (0.1, 0.3),
    "K": (5.0, 15.0),
    "a": (0.2, 0.5),
    "ah": (0.05, 0.2),  # the saturation a*h; h = ah / a
    "e": (0.3, 0.7),
    "m": (0.1, 0.3),
}
RANGES = {"study": (STUDY_LV_RANGES, STUDY_RM_RANGES), "fast": (LV_RANGES, RM_RANGES)}
DYNAMICS = ("rosenzweig-macarthur", "lotka-volterra", "mixed")
INITIAL_RANGE = (0.8, 1.2)
MAX_SUBSTEPS = 100_000  # RK4 steps per series (~20 s for 1000 series on one core)
MAX_STEP = 0.1  # RK4 sub-step (time units)
LV_SHARE = 0.3  # of series in "mixed"


def lv_rhs(state: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    x, y = state[:, 0], state[:, 1]
    return np.stack([p["a"] * x - p["b"] * x * y, p["d"] * x * y - p["g"] * y], axis=1)


def rm_rhs(state: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    x, y = state[:, 0], state[:, 1]
    predation = p["a"] * x * y / (1.0 + p["a"] * p["h"] * x)
    return np.stack([p["r"] * x * (1.0 - x / p["K"]) - predation, p["e"] * predation - p["m"] * y], axis=1)


def rk4(f, state, params, t_out: np.ndarray, max_step: float) -> np.ndarray:
    """Classic RK4, vectorised over series, with equal sub-steps of at most ``max_step``
    between output times (0.1 keeps the LV invariant to ~1e-6 over t = 200)."""
    out = np.empty((state.shape[0], len(t_out), 2))
    out[:, 0] = state
    for k in range(1, len(t_out)):
        substeps = max(1, int(np.ceil((t_out[k] - t_out[k - 1]) / max_step)))
        h = (t_out[k] - t_out[k - 1]) / substeps
        for _ in range(substeps):
            k1 = f(state, params)
            k2 = f(state + 0.5 * h * k1, params)
            k3 = f(state + 0.5 * h * k2, params)
            k4 = f(state + h * k3, params)
            state = state + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        out[:, k] = state
    return out


def _check_span(span: float) -> None:
    if span / MAX_STEP > MAX_SUBSTEPS:
        raise UsageError(
            f"a time span of {span:g} needs {span / MAX_STEP:.3g} integration steps, which would take "
            f"minutes or more; keep it <= {MAX_SUBSTEPS * MAX_STEP:g}"
        )


def _dataset(traj: np.ndarray, time: np.ndarray) -> Dataset:
    # Populations are positive in exact arithmetic; clip the rare -1e-12 from rounding.
    traj32 = np.maximum(traj, 0.0).astype(np.float32)
    validate(traj32, time, "simulated dataset")
    return Dataset(traj32.astype(np.float64), time, "")


def simulate(
    n: int = 1000,
    points: int = 100,
    t_max: float = 200.0,
    seed: int = 0,
    dynamics: str = "rosenzweig-macarthur",
    ranges: str = "study",
) -> Dataset:
    """Simulate ``n`` series at ``points`` times in ``[0, t_max]``.

    ``rosenzweig-macarthur`` (the study's model), ``lotka-volterra`` (closed orbits), or
    ``mixed`` (Lotka-Volterra for 30% of the series). Parameters come from the ``ranges``
    set (:data:`RANGES`: ``study`` or ``fast``), initial prey and predator from
    :data:`INITIAL_RANGE`. Same arguments, same array.
    """
    if dynamics not in DYNAMICS:
        raise UsageError(f"unknown dynamics {dynamics!r} (use one of {', '.join(DYNAMICS)})")
    if ranges not in RANGES:
        raise UsageError(f"unknown parameter ranges {ranges!r} (use one of {', '.join(RANGES)})")
    if n < 1 or points < 2 or not (np.isfinite(t_max) and t_max > 0):
        raise UsageError("need --n >= 1, --points >= 2 and a finite --t-max > 0")
    _check_span(t_max)
    lv_ranges, rm_ranges = RANGES[ranges]
    rng = np.random.default_rng(seed)
    time = np.linspace(0.0, t_max, points)
    init = rng.uniform(*INITIAL_RANGE, size=(n, 2))
    lv_params = {k: rng.uniform(lo, hi, n) for k, (lo, hi) in lv_ranges.items()}
    rm_params = {k: rng.uniform(lo, hi, n) for k, (lo, hi) in rm_ranges.items()}
    if "ah" in rm_params:
        rm_params["h"] = rm_params.pop("ah") / rm_params["a"]
    use_lv = rng.random(n) < LV_SHARE if dynamics == "mixed" else np.full(n, dynamics == "lotka-volterra")
    traj = np.empty((n, points, 2))
    for mask, f, params in ((use_lv, lv_rhs, lv_params), (~use_lv, rm_rhs, rm_params)):
        if mask.any():
            traj[mask] = rk4(f, init[mask], {k: v[mask] for k, v in params.items()}, time, MAX_STEP)
    return _dataset(traj, time)


# --- simulate --like ------------------------------------------------------------------

MAX_FAILED_SHARE = 0.25  # --like refuses a file with more series the fit cannot describe
FIT_CHUNK = 500  # series fitted together (memory: the Jacobian of a chunk)
WARM_STEPS = 20  # steps of the first, short fit (see fit)


@dataclass
class Fitted:
    """What ``simulate --like`` keeps of a dataset: the log-parameters of the
    Rosenzweig-MacArthur equations and the initial state of every series the fit
    describes, the residual noise (fit RMSE over the series' spread, median), the grid."""

    theta: np.ndarray  # (M, 6) log r, K, a, h, e, m
    start: np.ndarray  # (M, 2)
    noise: float
    time: np.ndarray
    n_series: int

    @property
    def failed(self) -> int:
        return self.n_series - len(self.theta)


def fit(ds: Dataset, progress=None) -> Fitted:
    """Fit every series of ``ds`` over its whole length (the ODE reference's fitter);
    a file where more than :data:`MAX_FAILED_SHARE` of series do not fit is refused."""
    from lvtime.references import MAX_FIT_RMSE, MODELS, fit_ode

    model = next(m for m in MODELS if m.name == "rosenzweig-macarthur")
    time = ds.time - ds.time[0]
    _check_span(float(time[-1]))
    thetas, rmses = [], []
    for lo in range(0, ds.n_series, FIT_CHUNK):
        chunk = ds.trajectories[lo : lo + FIT_CHUNK]
        # A fit over the whole length from a poor start locks onto the wrong phase; a fit of
        # the first WARM_STEPS first is a start that keeps fast oscillations (5% fail, not 19%)
        warm, _ = fit_ode(model, chunk[:, :WARM_STEPS], time[:WARM_STEPS], iters=60)
        theta, rmse = fit_ode(model, chunk, time, iters=60, starts=(warm,))
        thetas.append(theta)
        rmses.append(rmse)
        if progress:
            progress(len(theta))
    theta, rmse = np.concatenate(thetas), np.concatenate(rmses)
    moves = ds.trajectories.std(axis=1).max(axis=1) > 0  # a constant series has no dynamics to copy
    good = np.isfinite(rmse) & (rmse <= MAX_FIT_RMSE) & moves
    failed = ds.n_series - int(good.sum())
    if failed > MAX_FAILED_SHARE * ds.n_series or good.sum() < 2:
        raise DataError(
            f"{ds.path}: the Rosenzweig-MacArthur fit does not describe {failed / ds.n_series:.0%} of its series "
            f"({failed} of {ds.n_series}; --like needs at least {1 - MAX_FAILED_SHARE:.0%} and 2 series)"
        )
    return Fitted(theta[good], ds.trajectories[good, 0], float(np.median(rmse[good])), ds.time, ds.n_series)


def _bandwidth(values: np.ndarray) -> np.ndarray:
    """Silverman's rule per column: the kernel width that smooths M draws into a density."""
    return 1.06 * values.std(axis=0) * len(values) ** -0.2


def like(fitted: Fitted, n: int = 1000, seed: int = 0) -> Dataset:
    """``n`` new series on the fitted file's time grid: parameters and initial states drawn
    from a kernel density of the fitted ones (log scale, so they stay positive and keep
    their correlations), integrated, plus Gaussian noise at the fit's residual level."""
    from lvtime.references import MAX_STEP as FIT_STEP
    from lvtime.references import MODELS

    model = next(m for m in MODELS if m.name == "rosenzweig-macarthur")
    rng = np.random.default_rng(seed)
    pick = rng.integers(len(fitted.theta), size=n)
    log_start = np.log(np.maximum(fitted.start, 1e-6))
    theta = fitted.theta[pick] + _bandwidth(fitted.theta) * rng.standard_normal((n, fitted.theta.shape[1]))
    start = np.exp(log_start[pick] + _bandwidth(log_start) * rng.standard_normal((n, 2)))
    theta = np.clip(theta, model.low, model.high)
    time = fitted.time - fitted.time[0]
    # The fit's own sub-step: its parameters reproduce the data with that integrator (with
    # a finer one, fast oscillations near their stability limit decay instead)
    with np.errstate(all="ignore"):
        traj = rk4(model.rhs, start, model.unpack(theta), time, FIT_STEP)
    bad = ~np.isfinite(traj).all(axis=(1, 2))
    if bad.any():  # a draw that diverges (rare): its fitted series' own parameters instead
        own = model.unpack(fitted.theta[pick[bad]])
        traj[bad] = rk4(model.rhs, fitted.start[pick[bad]], own, time, FIT_STEP)
    spread = traj.std(axis=1, keepdims=True)
    traj = traj + fitted.noise * spread * rng.standard_normal(traj.shape)
    return _dataset(traj, fitted.time.copy())
