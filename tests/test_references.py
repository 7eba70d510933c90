"""Reference forecasts: the ODE fit at the physical limit, seasonal naive, fallbacks."""

import numpy as np
import pytest

from lvtime import metrics, references, simulation


def _one_series(dynamics, params, points=100, t_max=200.0):
    """A noise-free series with known parameters (lvtime's own RK4)."""
    times = np.linspace(0, t_max, points)
    rhs = simulation.rm_rhs if dynamics == "rosenzweig-macarthur" else simulation.lv_rhs
    p = {k: np.array([v]) for k, v in params.items()}
    return simulation.rk4(rhs, np.array([[1.0, 1.0]]), p, times, 0.05), times[1] - times[0]


RM_TRUE = {"r": 0.4, "K": 6.0, "a": 0.4, "h": 1.2, "e": 0.6, "m": 0.15}
LV_TRUE = {"a": 0.3, "b": 0.2, "d": 0.15, "g": 0.3}


@pytest.mark.parametrize("dynamics, true", [("rosenzweig-macarthur", RM_TRUE), ("lotka-volterra", LV_TRUE)])
def test_ode_fit_recovers_parameters_and_forecasts(dynamics, true):
    series, dt = _one_series(dynamics, true)
    history, truth = series[:, :50], series[:, 50:]
    model = next(m for m in references.MODELS if m.name == dynamics)
    theta, rmse = references.fit_ode(model, history, np.arange(50) * dt)
    fitted = {k: float(v[0]) for k, v in model.unpack(theta).items()}
    assert fitted == pytest.approx(true, rel=0.02)
    assert rmse[0] < 1e-3
    result = references.ode(history, 50, dt)
    assert result.model == [dynamics] and result.fallbacks == 0
    r2 = metrics.per_series(result.forecast, truth, history)["r2"]
    assert (r2 > 0.99).all()


def test_ode_falls_back_on_a_series_it_cannot_fit_and_counts_it():
    noise = np.random.default_rng(0).uniform(0.5, 3.0, (1, 50, 2))
    good, dt = _one_series("rosenzweig-macarthur", RM_TRUE)
    history = np.concatenate([noise, good[:, :50]])
    result = references.ode(history, 10, dt)
    assert result.fallbacks == 1 and result.model[0] == "fallback"
    np.testing.assert_array_equal(result.forecast[0], references.last_value(noise, 10)[0])
    forecasts, info = references.compute(history, 10, dt, ["ode", "last_value"])
    assert info["ode"]["fallbacks"] == 1 and set(forecasts) == {"ode", "last_value"}


def test_seasonal_repeats_the_last_cycle_of_the_dominant_period():
    t = np.arange(60)
    wave = 2 + np.sin(2 * np.pi * t / 12)
    series = np.stack([wave, 2 + np.cos(2 * np.pi * t / 12)], -1)[None]
    assert references.dominant_period(series[:, :48]).tolist() == [12]
    forecast = references.seasonal(series[:, :48], 12)
    np.testing.assert_allclose(forecast, series[:, 48:], atol=1e-12)
    flat = np.ones((1, 48, 2))
    assert references.dominant_period(flat).tolist() == [0]
    np.testing.assert_array_equal(references.seasonal(flat, 3), np.ones((1, 3, 2)))


def test_unknown_reference_is_a_usage_error():
    from lvtime.errors import UsageError

    with pytest.raises(UsageError, match="unknown reference"):
        references.compute(np.ones((1, 5, 2)), 2, 1.0, ["oracle"])


def test_a_fit_counts_as_stalled_only_when_its_cost_stops_falling():
    before = np.array([1.0, 1.0, np.inf, np.inf, 1.0])
    now = np.array([0.5, 1.0 - 1e-12, np.inf, 3.0, np.nan])
    assert references._stalled(before, now).tolist() == [False, True, True, False, True]


# --- the table: one entry per reference, read by every consumer ---------------------


def test_every_entry_runs_through_compute_and_is_drawn(monkeypatch):
    """Each installed entry's function is found from the table and gives (N, horizon, 2);
    the plot, the report and the CLI label every one."""
    from lvtime import reference_table

    series, dt = _one_series("rosenzweig-macarthur", RM_TRUE)
    history = np.concatenate([series[:, :40], series[:, :40] * 0.5])
    names = reference_table.available()
    forecasts, info = references.compute(history, 7, dt, names)
    assert set(forecasts) == set(names)
    for f in forecasts.values():
        assert f.shape == (2, 7, 2) and np.isfinite(f).all() and (f >= 0).all()
    assert set(info) == {reference_table.LIMIT}  # only the ODE fit reports details
    labels = [reference_table.label(r.name) for r in reference_table.TABLE]
    assert len(set(labels)) == len(labels) and reference_table.label("model") == "model"


def test_the_best_naive_reference_never_is_the_limit_or_the_model():
    from lvtime.reference_table import LIMIT, best_naive

    assert best_naive({"model": 0.1, LIMIT: 0.2, "seasonal": 1.5, "linear": 1.2, "last_value": None}) == (
        "linear",
        1.2,
    )
    assert best_naive({"model": 0.1, LIMIT: 0.2}) == (None, None)


def test_a_reference_whose_package_is_missing_says_how_to_install_it(monkeypatch):
    from lvtime import reference_table
    from lvtime.config import ForecastConfig
    from lvtime.errors import UsageError

    monkeypatch.setattr(reference_table, "installed", lambda ref: ref.needs is None)
    with pytest.raises(UsageError, match=r"needs statsforecast: pip install 'lvtime\[arima\]'"):
        ForecastConfig(references=["arima"])
    assert "arima" not in ForecastConfig().references  # the default is what is installed
    assert "arima" not in ForecastConfig(references=["all"]).references
    with pytest.raises(UsageError, match="unknown reference"):
        references.compute(np.ones((1, 10, 2)), 3, 1.0, ["nope"])


def test_arima_forecasts_a_seasonal_series_better_than_the_last_value():
    pytest.importorskip("statsforecast", reason="the arima extra is not installed")
    series, dt = _one_series("rosenzweig-macarthur", RM_TRUE)
    history, truth = series[:, :60], series[:, 60:80]
    f, _ = references.compute(history, 20, dt, ["arima", "last_value"])
    mae = {k: float(np.abs(v - truth).mean()) for k, v in f.items()}
    assert mae["arima"] < mae["last_value"]
