"""simulate's defaults against the study's statistics, --like, and lvtime stats."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lvtime import data, data_stats, simulation
from lvtime.cli import app
from lvtime.errors import DataError

runner = CliRunner()


def _within(found: dict, target: dict, rel: float) -> dict:
    """The statistics of ``found`` more than ``rel`` away from ``target`` (empty: all close)."""
    return {k: (found[k], target[k]) for k in target if abs(found[k] / target[k] - 1) > rel}


def test_default_simulation_matches_the_study_statistics_within_10_percent():
    found = data_stats.describe(simulation.simulate(n=1000, seed=0).trajectories)
    assert _within(found, data_stats.STUDY, 0.10) == {}
    fast = data_stats.describe(simulation.simulate(n=300, seed=0, ranges="fast").trajectories)
    assert _within(fast, data_stats.STUDY, 0.10)  # the check can fail: the old set is far off


def test_statistics_of_known_series():
    t = np.arange(100)
    prey = 2 + np.sin(2 * np.pi * t / 20)
    predator = 0.5 + 0.25 * np.sin(2 * np.pi * t / 20) * np.exp(-t / 100)
    stats = data_stats.describe(np.stack([prey, predator], -1)[None])
    assert stats["period_p50"] == pytest.approx(20, rel=0.02)
    assert stats["cv_prey"] == pytest.approx(np.std(prey) / np.mean(prey))
    assert stats["decay_prey"] == pytest.approx(1, abs=0.02)
    assert stats["decay_predator"] == pytest.approx(np.exp(-0.5), rel=0.05)
    assert stats["predator_over_prey"] == pytest.approx(np.percentile(predator, 95) / np.percentile(prey, 95))
    assert set(stats) == {s.name for s in data_stats.STATISTICS} == set(data_stats.STUDY)


def test_like_reproduces_a_files_statistics_within_10_percent():
    source = simulation.simulate(n=300, seed=7, ranges="study")
    fitted = simulation.fit(source)
    assert fitted.failed == 0 and fitted.noise < 0.01
    drawn = simulation.like(fitted, n=1000, seed=2)
    assert drawn.trajectories.shape == (1000, 100, 2)
    np.testing.assert_array_equal(drawn.time, source.time)
    assert _within(data_stats.describe(drawn.trajectories), data_stats.describe(source.trajectories), 0.10) == {}
    assert not np.isin(drawn.trajectories[:, 5], source.trajectories[:, 5]).any()  # new series, not copies


def test_like_refuses_a_file_the_fit_cannot_describe():
    rng = np.random.default_rng(0)
    noise = data.Dataset(rng.uniform(0.1, 5, size=(12, 40, 2)), np.linspace(0, 80, 40), "noise.h5")
    with pytest.raises(DataError, match=r"noise.h5: .* does not describe \d+% of its series \(\d+ of 12"):
        simulation.fit(noise)
    flat = data.Dataset(np.ones((5, 30, 2)), np.arange(30.0), "flat.h5")
    with pytest.raises(DataError, match=r"flat.h5: .* does not describe 100% of its series \(5 of 5"):
        simulation.fit(flat)


def test_statistics_of_constant_series_are_missing_not_invented():
    stats = data_stats.describe(np.ones((3, 40, 2)))
    undefined = [k for k in stats if k.startswith(("period", "decay")) or k == "seasonal_mase"]
    assert all(np.isnan(stats[k]) for k in undefined), stats
    assert stats["cv_prey"] == 0 and stats["predator_over_prey"] == 1
    assert all(np.isnan(v) for v in data_stats.describe(np.zeros((3, 40, 2))).values())


def test_simulate_like_and_stats_commands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["simulate", "src.h5", "--n", "40", "--points", "60", "--t-max", "120"]).exit_code == 0
    r = runner.invoke(app, ["simulate", "more.h5", "--like", "src.h5", "--n", "80", "--seed", "3", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["fitted"] + summary["not_fitted"] == 40 and summary["n_series"] == 80
    more = data.load_dataset("more.h5")
    assert more.trajectories.shape == (80, 60, 2)
    np.testing.assert_allclose(more.time, np.linspace(0, 120, 60))
    r = runner.invoke(app, ["simulate", "tr.h5", "--like", "src.h5", "--like-split", "train", "--n", "5", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["fitted"] + json.loads(r.stdout)["not_fitted"] == 28  # 70%
    assert runner.invoke(app, ["simulate", "y.h5", "--like-split", "train"]).exit_code == 2
    r = runner.invoke(app, ["simulate", "x.h5", "--like", "src.h5", "--t-max", "5"])
    assert r.exit_code == 2 and "drop --t-max" in r.output
    r = runner.invoke(app, ["stats", "src.h5", "more.h5", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["study"] == data_stats.STUDY
    assert out["files"]["more.h5"] == pytest.approx(data_stats.describe(more.trajectories))
    r = runner.invoke(app, ["stats", "src.h5"])
    assert r.exit_code == 0 and "seasonal naive MASE" in r.stdout and "src.h5" in r.stdout
    r = runner.invoke(app, ["stats"])
    assert r.exit_code == 2 and "give one or more datasets" in r.output
