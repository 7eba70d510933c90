"""Predator-prey datasets: the study's HDF5 layout, simulation, and splits. No torch.

Layout (as in the study's ``lotka_volterra_data.h5``)::

    /trajectories  float32 (N, T, 2)   [:, :, 0] prey, [:, :, 1] predator, all >= 0
    /time          float64 (T,)        e.g. linspace(0, 200, 100)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lvtime.config import DEFAULT_DATA_FILE  # noqa: F401 - where commands look for data
from lvtime.errors import DataError, UsageError
from lvtime.shell import command_line

SPLITS = ("train", "val", "test")
# Fractions of the study's 1000-series file: 0-699 train, 700-899 val, 900-999 test.
SPLIT_FRACTIONS = (0.7, 0.2, 0.1)


@dataclass
class Dataset:
    """Trajectories ``(N, T, 2)`` float64 in memory, the time axis, and where they came from."""

    trajectories: np.ndarray
    time: np.ndarray
    path: str = ""

    @property
    def n_series(self) -> int:
        return self.trajectories.shape[0]

    @property
    def n_points(self) -> int:
        return self.trajectories.shape[1]


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Load and validate a dataset file; every problem is a one-line :class:`DataError`."""
    import h5py  # h5py is quick to import, but only commands that read data need it

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file (create one with `{command_line(['lvtime', 'simulate', str(p)])}`)")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, expected an HDF5 file")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: file is empty")
    if not h5py.is_hdf5(p):
        raise DataError(f"{p}: not an HDF5 file")
    try:
        with h5py.File(p, "r") as f:
            for name in ("trajectories", "time"):
                if name not in f:
                    raise DataError(f"{p}: missing dataset /{name}")
                if not isinstance(f[name], h5py.Dataset):
                    raise DataError(f"{p}: /{name} is a group, expected a dataset")
            for name in ("trajectories", "time"):
                kind = f[name].dtype.kind
                if kind not in "iuf":  # complex would lose its imaginary part; strings, structs...
                    raise DataError(f"{p}: /{name} holds {f[name].dtype} values, expected real numbers")
            traj = np.asarray(f["trajectories"][()], dtype=np.float64)
            time = np.asarray(f["time"][()], dtype=np.float64)
    except DataError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"{p}: cannot read HDF5 contents ({exc})") from None
    validate(traj, time, str(p))
    return Dataset(traj, time, str(p))


def validate(traj: np.ndarray, time: np.ndarray, name: str = "dataset") -> None:
    """Check the layout and values; raise :class:`DataError` naming the first problem."""
    if traj.ndim != 3:
        raise DataError(f"{name}: /trajectories has rank {traj.ndim}, expected 3 (N, T, 2)")
    if traj.shape[2] != 2:
        raise DataError(f"{name}: /trajectories last dimension is {traj.shape[2]}, expected 2 (prey, predator)")
    if traj.shape[0] == 0 or traj.shape[1] == 0:
        raise DataError(f"{name}: /trajectories is empty (shape {traj.shape})")
    if time.ndim != 1 or time.shape[0] != traj.shape[1]:
        raise DataError(f"{name}: /time has shape {time.shape}, expected ({traj.shape[1]},) to match /trajectories")
    bad = ~np.isfinite(traj)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise DataError(f"{name}: /trajectories has NaN or inf values (first in series {i})")
    if not np.isfinite(time).all():
        raise DataError(f"{name}: /time has NaN or inf values")
    if (traj < 0).any():
        i = int(np.argwhere(traj < 0)[0][0])
        raise DataError(f"{name}: /trajectories has negative values (first in series {i})")


def time_step(ds) -> float:
    """The dataset's time step (the ODE reference integrates in the data's time units)."""
    steps = np.diff(ds.time)
    if steps.size == 0 or not np.allclose(steps, steps[0], rtol=1e-6) or steps[0] <= 0:
        raise DataError(f"{ds.path}: /time is not evenly spaced and increasing; the ODE reference needs it")
    return float(steps[0])


def save_dataset(path: str | os.PathLike, dataset: Dataset, force: bool = False) -> None:
    """Write the study's layout, marked as lvtime's; an existing file is replaced only
    with ``force`` and only if lvtime simulated it (see :mod:`lvtime.outfiles`)."""
    import h5py

    from lvtime import outfiles

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs[outfiles.DATASET_MARK] = "simulate"
            f.create_dataset("trajectories", data=dataset.trajectories.astype(np.float32))
            f.create_dataset("time", data=dataset.time.astype(np.float64))

    outfiles.atomic_write(outfiles.check(path, force, "dataset", what="OUT"), write)


# --- splits -------------------------------------------------------------------------


def split_indices(n: int, scheme: str = "ordered", seed: int = 0) -> dict[str, np.ndarray]:
    """Series indices of the train / val / test splits.

    ``ordered`` (default) takes the first 70% for training, the next 20% for validation
    and the last 10% for test: 0-699 / 700-899 / 900-999 for the study's 1000 series.
    ``random`` shuffles with ``seed`` first, then cuts the same proportions.
    """
    if n <= 0:
        raise UsageError("cannot split an empty dataset")
    n_train = int(round(n * SPLIT_FRACTIONS[0]))
    n_val = int(round(n * SPLIT_FRACTIONS[1]))
    order = np.arange(n)
    if scheme == "random":
        order = np.random.default_rng(seed).permutation(n)
    elif scheme != "ordered":
        raise UsageError(f"unknown split scheme {scheme!r} (use 'ordered' or 'random')")
    return {
        "train": np.sort(order[:n_train]),
        "val": np.sort(order[n_train : n_train + n_val]),
        "test": np.sort(order[n_train + n_val :]),
    }


def training_alpha(ds: Dataset, scheme: str = "ordered", seed: int = 0, scale: str = "series"):
    """The LLMTIME scale of ``--alpha-mode global`` (one, or a pair with ``scale="species"``):
    from the training split's values only."""
    from lvtime.llmtime import global_alpha

    return global_alpha(ds.trajectories[split_indices(ds.n_series, scheme, seed)["train"]], scale)


def select_series(
    n: int,
    series: list[int] | None = None,
    split: str | None = None,
    limit: int | None = None,
    scheme: str = "ordered",
    seed: int = 0,
) -> np.ndarray:
    """Resolve ``--series`` / ``--split`` / ``--limit`` to validated indices."""
    if series:
        idx = np.asarray(series, dtype=np.int64)
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise UsageError(f"series {int(bad[0])} is out of range (dataset has {n} series)")
    elif split:
        if split not in SPLITS:
            raise UsageError(f"unknown split {split!r} (use one of {', '.join(SPLITS)})")
        idx = split_indices(n, scheme, seed)[split]
        if idx.size == 0:
            raise UsageError(f"the {split} split of {n} series is empty; choose --series or another split")
    else:
        idx = np.arange(n)
    return idx[:limit] if limit is not None else idx
