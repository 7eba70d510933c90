import h5py
import numpy as np
import pytest

from lvtime import data, simulation
from lvtime.errors import DataError, UsageError


def write(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return path


GOOD_T = np.linspace(0, 200, 5)
GOOD = np.ones((3, 5, 2), dtype=np.float32)


def test_loads_study_layout(tmp_path):
    ds = data.load_dataset(write(tmp_path / "ok.h5", trajectories=GOOD, time=GOOD_T))
    assert ds.trajectories.shape == (3, 5, 2) and ds.trajectories.dtype == np.float64
    assert ds.n_series == 3 and ds.n_points == 5


@pytest.mark.parametrize(
    "datasets, message",
    [
        ({"time": GOOD_T}, "missing dataset /trajectories"),
        ({"trajectories": GOOD}, "missing dataset /time"),
        ({"trajectories": np.ones((3, 5)), "time": GOOD_T}, "rank 2"),
        ({"trajectories": np.ones((3, 5, 3)), "time": GOOD_T}, "last dimension is 3"),
        ({"trajectories": GOOD, "time": np.linspace(0, 1, 4)}, "/time has shape (4,)"),
        ({"trajectories": np.full((3, 5, 2), np.nan), "time": GOOD_T}, "NaN or inf"),
        ({"trajectories": np.full((3, 5, 2), np.inf), "time": GOOD_T}, "NaN or inf"),
        ({"trajectories": -GOOD, "time": GOOD_T}, "negative values"),
        ({"trajectories": np.ones((0, 5, 2)), "time": GOOD_T}, "empty"),
    ],
)
def test_validation_errors_name_file_and_problem(tmp_path, datasets, message):
    path = write(tmp_path / "bad.h5", **datasets)
    with pytest.raises(DataError) as exc:
        data.load_dataset(path)
    assert str(path) in str(exc.value) and message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_empty_and_non_hdf5_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        data.load_dataset(tmp_path / "nope.h5")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(DataError, match="file is empty"):
        data.load_dataset(tmp_path / "empty.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DataError, match="not an HDF5 file"):
        data.load_dataset(tmp_path / "text.h5")


def test_group_instead_of_dataset(tmp_path):
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.create_group("trajectories")
        f.create_dataset("time", data=GOOD_T)
    with pytest.raises(DataError, match="is a group"):
        data.load_dataset(tmp_path / "g.h5")


def test_simulate_layout_and_determinism(tmp_path):
    a = simulation.simulate(n=40, points=50, t_max=100, seed=3)
    b = simulation.simulate(n=40, points=50, t_max=100, seed=3)
    c = simulation.simulate(n=40, points=50, t_max=100, seed=4)
    np.testing.assert_array_equal(a.trajectories, b.trajectories)
    assert not np.array_equal(a.trajectories, c.trajectories)
    assert a.trajectories.shape == (40, 50, 2) and (a.trajectories >= 0).all()
    np.testing.assert_allclose(a.time, np.linspace(0, 100, 50))
    np.testing.assert_allclose(a.trajectories[:, 0], np.clip(a.trajectories[:, 0], 0.8, 1.2))
    path = tmp_path / "sim.h5"
    data.save_dataset(path, a)
    with h5py.File(path) as f:
        assert f["trajectories"].dtype == np.float32 and f["trajectories"].shape == (40, 50, 2)
        assert f["time"].dtype == np.float64
    with pytest.raises(UsageError, match="already exists"):
        data.save_dataset(path, a)
    data.save_dataset(path, c, force=True)


def test_simulate_has_oscillating_and_settling_series():
    for ranges, dynamics in (("study", "rosenzweig-macarthur"), ("fast", "mixed")):
        tr = simulation.simulate(n=200, seed=0, ranges=ranges, dynamics=dynamics).trajectories
        late_std = tr[:, -20:].std(axis=1).max(axis=1)
        assert (late_std < 0.02).sum() >= 10 and (late_std > 0.1).sum() >= 20


def test_default_simulation_looks_like_the_study_data():
    """Dominant period ~20 steps over the first 50 (the study's), not ~8 (the fast set)."""
    from lvtime.references import dominant_period

    def median_period(ds):
        p = dominant_period(ds.trajectories[:, :50])
        return np.median(p[p > 0])

    study = simulation.simulate(n=200, seed=0)
    assert 17 <= median_period(study) <= 24
    assert median_period(simulation.simulate(n=200, seed=0, ranges="fast", dynamics="mixed")) <= 10
    assert 0.8 <= np.median(study.trajectories[..., 0]) <= 2.0


def test_rk4_matches_the_lotka_volterra_invariant():
    # Classic LV conserves V = d x - g ln x + b y - a ln y; RK4 with sub-steps must keep it.
    ds = simulation.simulate(n=10, points=200, t_max=100, seed=2, dynamics="lotka-volterra", ranges="fast")
    rng = np.random.default_rng(2)
    rng.uniform(size=(10, 2))
    p = {k: rng.uniform(lo, hi, 10) for k, (lo, hi) in simulation.LV_RANGES.items()}
    x, y = ds.trajectories[..., 0], ds.trajectories[..., 1]
    v = p["d"][:, None] * x - p["g"][:, None] * np.log(x) + p["b"][:, None] * y - p["a"][:, None] * np.log(y)
    assert np.abs(v - v[:, :1]).max() < 1e-4


def test_splits():
    s = data.split_indices(1000)
    assert (s["train"] == np.arange(700)).all()
    assert (s["val"] == np.arange(700, 900)).all() and (s["test"] == np.arange(900, 1000)).all()
    s10 = data.split_indices(10)
    assert [len(s10[k]) for k in data.SPLITS] == [7, 2, 1]
    r = data.split_indices(100, "random", seed=5)
    assert sorted(np.concatenate(list(r.values())).tolist()) == list(range(100))
    assert (r["test"] == data.split_indices(100, "random", seed=5)["test"]).all()
    assert not (r["train"] == np.arange(70)).all()
    with pytest.raises(UsageError):
        data.split_indices(10, "weird")


def test_select_series():
    assert data.select_series(10, series=[3, 4]).tolist() == [3, 4]
    assert data.select_series(10, split="test").tolist() == [9]
    assert data.select_series(1000, split="test", limit=3).tolist() == [900, 901, 902]
    with pytest.raises(UsageError, match="out of range"):
        data.select_series(10, series=[10])
