import numpy as np
import pytest

from lvtime import metrics, references


def test_hand_computed_metrics():
    history = np.array([[[1.0, 2.0], [2.0, 2.0], [4.0, 2.0]]])  # prey diffs 1, 2 -> scale 1.5
    truth = np.array([[[1.0, 3.0], [2.0, 3.0], [3.0, 3.0]]])
    forecast = np.array([[[2.0, 3.0], [2.0, 4.0], [5.0, 3.0]]])
    m = metrics.per_series(forecast, truth, history)
    # prey errors: 1, 0, 2 -> MSE 5/3, MAE 1; SS_tot = 2, SS_res = 5 -> R2 = -1.5; MASE = 1/1.5
    assert m["mse"][0, 0] == pytest.approx(5 / 3)
    assert m["mae"][0, 0] == pytest.approx(1.0)
    assert m["r2"][0, 0] == pytest.approx(1 - 5 / 2)
    assert m["mase"][0, 0] == pytest.approx(1 / 1.5)
    # predator: constant truth -> R2 undefined; constant history -> MASE undefined
    assert m["mae"][0, 1] == pytest.approx(1 / 3)
    assert np.isnan(m["r2"][0, 1]) and np.isnan(m["mase"][0, 1])


def test_perfect_forecast_and_aggregates():
    rng = np.random.default_rng(0)
    truth = rng.uniform(1, 2, (4, 5, 2))
    history = rng.uniform(1, 2, (4, 6, 2))
    m = metrics.per_series(truth, truth, history)
    assert np.allclose(m["mse"], 0) and np.allclose(m["r2"], 1)
    agg = metrics.aggregate({k: np.array([[1.0, np.nan], [3.0, np.nan], [8.0, 2.0]]) for k in metrics.METRICS})
    assert agg["prey"]["mae"] == {"mean": 4.0, "median": 3.0, "n": 3}
    assert agg["predator"]["r2"] == {"mean": 2.0, "median": 2.0, "n": 1}


def test_reference_forecasts():
    history = np.array([[[1.0, 5.0], [2.0, 4.0], [3.0, 3.0], [4.0, 2.0]]])
    assert references.last_value(history, 2).tolist() == [[[4.0, 2.0], [4.0, 2.0]]]
    lin = references.linear(history, 3, window=4)
    assert lin[0, :, 0].tolist() == pytest.approx([5.0, 6.0, 7.0])
    assert lin[0, :, 1].tolist() == pytest.approx([1.0, 0.0, 0.0])  # clipped at zero
    result = metrics.score(lin, lin, history, {"linear": lin})
    assert set(result) == {"model", "linear"}
    assert "crps" not in result["model"]["per_series"]  # one forecast: no sample scores


def test_crps_is_the_mae_for_one_sample_and_matches_a_hand_value_for_two():
    rng = np.random.default_rng(1)
    truth = rng.uniform(0, 3, (4, 6, 2))
    one = rng.uniform(0, 3, (4, 1, 6, 2))
    np.testing.assert_allclose(metrics.sample_scores(one, truth)["crps"], np.abs(one[:, 0] - truth).mean(axis=1))
    # samples 1 and 3, truth 2: E|X-y| = 1, E|X-X'| = (0+2+2+0)/4 = 1, CRPS = 1 - 0.5 = 0.5
    two = np.array([1.0, 3.0]).reshape(1, 2, 1, 1).repeat(2, axis=3)
    scores = metrics.sample_scores(two, np.full((1, 1, 2), 2.0))
    assert scores["crps"].tolist() == [[0.5, 0.5]]
    assert scores["coverage"].tolist() == [[1.0, 1.0]]  # 2 lies inside [1.2, 2.8]
    assert scores["width"][0, 0] == pytest.approx(1.6)


def test_sample_scores_appear_with_several_samples():
    rng = np.random.default_rng(2)
    truth, history = rng.uniform(0, 3, (3, 5, 2)), rng.uniform(0, 3, (3, 8, 2))
    samples = rng.uniform(0, 3, (3, 4, 5, 2))
    result = metrics.score(np.median(samples, axis=1), truth, history, samples=samples)
    assert {"crps", "coverage", "width"} <= set(result["model"]["aggregate"]["prey"])


def test_mae_by_horizon_is_the_median_over_series_of_each_blocks_mae():
    truth = np.zeros((3, 10, 2))
    f = np.zeros((3, 10, 2))
    f[:, 5:, 0] = [[1.0], [2.0], [9.0]]  # prey wrong late only; median over series 2.0
    f[0, :, 1] = 4.0  # one predator series wrong everywhere; median 0
    late = np.zeros((3, 10, 2))
    late[:, :5] = 1.0
    out = metrics.by_horizon({"model": f, "ref": late}, truth, blocks=2)
    assert out["steps"] == ["1-5", "6-10"]
    assert out["model"] == {"prey": [0.0, 2.0], "predator": [0.0, 0.0]}
    assert out["ref"] == {"prey": [1.0, 0.0], "predator": [1.0, 0.0]}
    short = metrics.by_horizon({"model": f[:, :3]}, truth[:, :3], blocks=5)
    assert short["steps"] == ["1", "2", "3"]  # never more blocks than steps
    assert metrics.by_horizon({"model": f}, truth, blocks=3)["steps"] == ["1-4", "5-7", "8-10"]
