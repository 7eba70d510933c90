"""Reference forecasts: what forecasters that are not language models achieve on the
same histories, so a model's score can be read against them. numpy and scipy, no torch.

* ``last_value``: repeat the last observed value.
* ``linear``: extend the least-squares line through the last 5 steps (clipped at 0).
* ``seasonal``: seasonal naive — each series' dominant period from the history's
  autocorrelation, then the last full cycle repeated (last value when none is found).
* ``arima``: AutoARIMA from statsforecast (the ``arima`` extra) on each species of each
  series, its season the dominant period seasonal naive uses.
* ``ode``: fit the Rosenzweig–MacArthur and the classic Lotka–Volterra equations to each
  history by least squares and integrate the better fit over the horizon. It knows the
  equations that generated the data, so on noise-free data like the study's it marks
  the physical limit of what a forecaster can reach, not a competitor.

The ODE fit is vectorised over series: parameters start from gradient matching (the
log-derivatives of the history are linear in most parameters), then a batched
Levenberg–Marquardt in log-parameters matches the simulated trajectory to the history.
A fit that fails or diverges falls back to the last value and is counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from lvtime import reference_table
from lvtime.simulation import lv_rhs, rk4, rm_rhs

MAX_STEP = 0.5  # RK4 sub-step for fitting (time units; the study's data step is ~2)
MAX_FIT_RMSE = 0.25  # history RMSE / history std above which a fit counts as failed
STALL_ITERS = 5  # iterations without progress after which a fit counts as converged


def last_value(history: np.ndarray, horizon: int, dt: float = 1.0) -> np.ndarray:
    """Repeat each series' last observed value."""
    return np.repeat(history[:, -1:, :], horizon, axis=1)


def linear(history: np.ndarray, horizon: int, dt: float = 1.0, window: int = 5) -> np.ndarray:
    """Extend the least-squares line through the last ``window`` steps; clipped at 0."""
    h = np.asarray(history, dtype=np.float64)
    w = min(window, h.shape[1])
    if w == 1:
        return last_value(h, horizon)
    t = np.arange(w, dtype=np.float64)
    tail = h[:, -w:, :]
    t_mean = t.mean()
    slope = np.sum((t - t_mean)[None, :, None] * (tail - tail.mean(axis=1, keepdims=True)), axis=1)
    slope /= np.sum((t - t_mean) ** 2)
    intercept = tail.mean(axis=1) - slope * t_mean
    future = np.arange(w, w + horizon, dtype=np.float64)
    return np.maximum(intercept[:, None, :] + slope[:, None, :] * future[None, :, None], 0.0)


# --- seasonal naive ------------------------------------------------------------------


def dominant_period(history: np.ndarray, min_corr: float = 0.2) -> np.ndarray:
    """Each series' dominant period in steps (0: none found).

    The autocorrelation of both species (mean removed, averaged over the two) is
    searched, after its first negative value, for its highest peak at lags up to three
    quarters of the history (so one full cycle of a slow series still fits); the peak
    must reach ``min_corr``.
    """
    h = np.asarray(history, dtype=np.float64)
    n, length, _ = h.shape
    x = h - h.mean(axis=1, keepdims=True)
    denom = np.sum(x * x, axis=1)  # (N, 2)
    lags = np.arange(3 * length // 4 + 1)
    acf = np.stack([np.sum(x[:, : length - k] * x[:, k:], axis=1) for k in lags], axis=1)  # (N, L, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        acf = np.where(denom[:, None, :] > 1e-12, acf / denom[:, None, :], 0.0)
    valid = (denom > 1e-12).sum(axis=1)[:, None]  # species that move (a constant one has no ACF)
    acf = acf.sum(axis=2) / np.maximum(valid, 1)
    periods = np.zeros(n, dtype=np.int64)
    for i in range(n):
        a = acf[i]
        negative = np.flatnonzero(a < 0)
        if negative.size == 0:
            continue
        k = negative[0] + int(np.argmax(a[negative[0] :]))
        if a[k] >= min_corr:
            periods[i] = k
    return periods


def seasonal(history: np.ndarray, horizon: int, dt: float = 1.0) -> np.ndarray:
    """Repeat the last full cycle of each series' dominant period."""
    h = np.asarray(history, dtype=np.float64)
    out = last_value(h, horizon)
    length = h.shape[1]
    for i, p in enumerate(dominant_period(h)):
        if p > 0:
            out[i] = h[i, length - p + np.arange(horizon) % p]
    return out


# --- ODE fit ---------------------------------------------------------------------------


@dataclass
class OdeModel:
    """A predator-prey model: right-hand side, parameter names and log-space bounds."""

    name: str
    rhs: object
    params: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        return {k: np.exp(theta[:, j]) for j, k in enumerate(self.params)}


MODELS = (
    OdeModel("rosenzweig-macarthur", rm_rhs, ("r", "K", "a", "h", "e", "m"),
             np.log([1e-3, 1e-2, 1e-3, 1e-3, 1e-2, 1e-3]), np.log([1e2, 1e3, 1e2, 1e2, 1e1, 1e2])),
    OdeModel("lotka-volterra", lv_rhs, ("a", "b", "d", "g"), np.log([1e-3] * 4), np.log([1e2] * 4)),
)  # fmt: skip


def _simulate(model: OdeModel, theta: np.ndarray, start: np.ndarray, times: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return rk4(model.rhs, start, model.unpack(theta), times, MAX_STEP)


def _gradient_matching(model: OdeModel, h: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Starting log-parameters from the history's log-derivatives (linear least squares)."""
    from scipy.interpolate import CubicSpline

    x, y = np.maximum(h[..., 0], 1e-6), np.maximum(h[..., 1], 1e-6)
    u = CubicSpline(times, np.log(x), axis=1)(times, 1)  # d ln x / dt
    v = CubicSpline(times, np.log(y), axis=1)(times, 1)  # d ln y / dt
    one = np.ones_like(x)
    if model.name == "lotka-volterra":  # u = a - b y ; v = d x - g
        (a, b), _ = _lstsq(np.stack([one, -y], -1), u)
        (d, g), _ = _lstsq(np.stack([x, -one], -1), v)
        raw = np.stack([a, b, d, g], -1)
    else:  # for each c = a h: u = r - (r/K) x - a y/(1+cx) ; v = (e a) x/(1+cx) - m
        best, raw = np.full(len(h), np.inf), np.ones((len(h), 6))
        for c in np.geomspace(1e-2, 1e1, 16):
            (r, r_k, a), res_u = _lstsq(np.stack([one, -x, -y / (1 + c * x)], -1), u)
            (ea, m), res_v = _lstsq(np.stack([x / (1 + c * x), -one], -1), v)
            res = res_u + res_v
            with np.errstate(all="ignore"):
                cand = np.stack([r, r / r_k, a, c / a, ea / a, m], -1)
            better = (res < best) & np.isfinite(cand).all(-1)
            best, raw = np.where(better, res, best), np.where(better[:, None], cand, raw)
    with np.errstate(all="ignore"):
        theta = np.log(np.where(np.isfinite(raw) & (raw > 0), raw, 1.0))
    return np.clip(theta, model.low, model.high)


def _lstsq(design: np.ndarray, target: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-series least squares (ridge 1e-9): coefficients and residual sum of squares."""
    xtx = np.einsum("ntp,ntq->npq", design, design) + 1e-9 * np.eye(design.shape[-1])
    coef = np.linalg.solve(xtx, np.einsum("ntp,nt->np", design, target)[..., None])[..., 0]
    res = np.sum((np.einsum("ntp,np->nt", design, coef) - target) ** 2, axis=1)
    return list(coef.T), res


def _levenberg_marquardt(residual, theta: np.ndarray, low, high, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Batched Levenberg-Marquardt with a forward-difference Jacobian and box bounds."""

    def cost_of(r):
        with np.errstate(over="ignore"):
            return np.where(np.isfinite(r).all(1), np.sum(np.nan_to_num(r) ** 2, axis=1), np.inf)

    r = residual(theta)
    cost, damping = cost_of(r), np.full(len(theta), 1e-2)
    eye = np.eye(theta.shape[1])
    recent = deque([cost], maxlen=STALL_ITERS + 1)  # the cost STALL_ITERS iterations ago, first
    for _ in range(iters):
        if len(recent) > STALL_ITERS and _stalled(recent[0], cost).all():
            break  # every fit has converged (or is stuck): further iterations change nothing
        eps = 1e-5  # every column of the forward-difference Jacobian in one batched call
        shifted = residual(np.concatenate([theta + eps * e for e in eye])).reshape(len(eye), *r.shape)
        jac = np.moveaxis((shifted - r) / eps, 0, -1)
        jac = np.nan_to_num(jac, nan=0.0, posinf=0.0, neginf=0.0)
        jtj = np.einsum("bmp,bmq->bpq", jac, jac)
        grad = np.einsum("bmp,bm->bp", jac, np.nan_to_num(r))
        system = jtj + damping[:, None, None] * (jtj * eye + 1e-9 * eye)
        step = -np.linalg.solve(system, grad[..., None])[..., 0]
        trial = np.clip(theta + np.nan_to_num(step), low, high)
        r_trial = residual(trial)
        cost_trial = cost_of(r_trial)
        ok = cost_trial < cost
        theta = np.where(ok[:, None], trial, theta)
        r = np.where(ok[:, None], r_trial, r)
        cost = np.where(ok, cost_trial, cost)
        damping = np.clip(np.where(ok, damping * 0.3, damping * 10), 1e-9, 1e9)
        recent.append(cost)
    return theta, cost


def _stalled(before: np.ndarray, now: np.ndarray, rel: float = 1e-8) -> np.ndarray:
    """Fits whose cost fell by less than ``rel`` of itself (an infinite cost never falls)."""
    return ~(now < before * (1 - rel))


def fit_ode(
    model: OdeModel, history: np.ndarray, times: np.ndarray, iters: int = 40, starts: tuple[np.ndarray, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Fitted log-parameters (N, P) and the normalised history RMSE (N,) of ``model``;
    ``starts`` adds starting log-parameters (N, P) to the two it always tries."""
    h = np.asarray(history, dtype=np.float64)
    n, length, _ = h.shape
    scale = np.maximum(h.std(axis=1), 1e-3)  # (N, 2): both species count equally
    starts = [_gradient_matching(model, h, times), np.tile((model.low + model.high) / 2 - 1.0, (n, 1)), *starts]
    theta0 = np.concatenate(starts)
    hist, sc = np.tile(h, (len(starts), 1, 1)), np.tile(scale, (len(starts), 1))

    def residual(theta):  # theta: (k * len(hist), P), k copies of the batch
        k = len(theta) // len(hist)
        target, norm = np.tile(hist, (k, 1, 1)), np.tile(sc, (k, 1))
        sim = _simulate(model, theta, target[:, 0], times)
        return ((sim[:, 1:] - target[:, 1:]) / norm[:, None, :]).reshape(len(theta), -1)

    theta, cost = _levenberg_marquardt(residual, theta0, model.low, model.high, iters)
    cost = cost.reshape(len(starts), n)
    best = np.argmin(cost, axis=0)
    theta = theta.reshape(len(starts), n, -1)[best, np.arange(n)]
    rmse = np.sqrt(cost[best, np.arange(n)] / (2 * (length - 1)))
    return theta, rmse


@dataclass
class OdeResult:
    forecast: np.ndarray  # (N, horizon, 2)
    model: list[str]  # the model kept per series, or "fallback"
    rmse: np.ndarray  # normalised history RMSE of the kept fit (NaN for a fallback)
    fallbacks: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def ode(history: np.ndarray, horizon: int, dt: float) -> OdeResult:
    """Fit both models to every history, keep the better, integrate from the last value.

    A fit whose history RMSE exceeds :data:`MAX_FIT_RMSE` of the history's spread, or whose
    forecast is not finite or leaves 10x the history's range, falls back to the last value.
    """
    h = np.asarray(history, dtype=np.float64)
    n, length, _ = h.shape
    times = np.arange(length) * dt
    future = np.arange(horizon + 1) * dt
    best_rmse, best_fc, kept = np.full(n, np.inf), last_value(h, horizon), ["fallback"] * n
    for model in MODELS:
        theta, rmse = fit_ode(model, h, times)
        fc = _simulate(model, theta, h[:, -1], future)[:, 1:]
        with np.errstate(invalid="ignore"):
            sane = np.isfinite(fc).all((1, 2)) & (fc.max((1, 2)) <= 10 * h.max((1, 2)) + 1) & (rmse <= MAX_FIT_RMSE)
        better = sane & (rmse < best_rmse)
        best_rmse = np.where(better, rmse, best_rmse)
        best_fc = np.where(better[:, None, None], np.maximum(fc, 0.0), best_fc)
        kept = [model.name if b else k for b, k in zip(better, kept, strict=True)]
    counts = {name: kept.count(name) for name in ("rosenzweig-macarthur", "lotka-volterra", "fallback")}
    return OdeResult(best_fc, kept, np.where(np.isfinite(best_rmse), best_rmse, np.nan), counts["fallback"], counts)


def arima(history: np.ndarray, horizon: int, dt: float = 1.0) -> np.ndarray:
    """statsforecast's AutoARIMA per species and series, with the season seasonal naive
    finds (none when it finds none); clipped at 0 like every population forecast."""
    import warnings

    from statsforecast.models import AutoARIMA

    h = np.asarray(history, dtype=np.float64)
    out = np.empty((h.shape[0], horizon, 2))
    for i, period in enumerate(dominant_period(h)):
        for sp in range(2):
            with warnings.catch_warnings():  # "3 or more differencing operations": its own advice, per fit
                warnings.simplefilter("ignore")
                fit = AutoARIMA(season_length=max(int(period), 1)).forecast(y=h[i, :, sp], h=horizon)
            out[i, :, sp] = fit["mean"]
    return np.maximum(np.nan_to_num(out, nan=0.0), 0.0)


def ode_reference(history: np.ndarray, horizon: int, dt: float) -> tuple[np.ndarray, dict]:
    """:func:`ode` as a table entry: the forecast, and how many fits fell back."""
    result = ode(history, horizon, dt)
    return result.forecast, {"fallbacks": result.fallbacks, "models": result.counts}


def compute(history: np.ndarray, horizon: int, dt: float, names=None) -> tuple[dict[str, np.ndarray], dict]:
    """Forecasts of the chosen references (default: every one available) and what their
    functions report about them."""
    from importlib import import_module

    out, info = {}, {}
    for name in reference_table.available() if names is None else names:
        ref = reference_table.require(name)
        module, function = ref.function.split(":")
        result = getattr(import_module(module), function)(history, horizon, dt)
        out[name], details = result if isinstance(result, tuple) else (result, None)
        if details is not None:
            info[name] = details
    return out, info
