"""Step 0's forecast evaluation, reused across the runs of a sweep or search.

At step 0 an adapter is all zeros (LoRA's B starts at zero), so every run of a sweep
forecasts its validation series with the base model itself: the same texts, scores and
FLOPs whenever the evaluation settings agree. The first run of the sweep that needs it
computes it (and is charged for it); every later run with the same settings logs the same
row, marked ``reused``, and is charged nothing for it. The record is a small JSON file per
settings in the sweep folder's ``.lvtime-step0/``, keyed by a hash of everything the
evaluation depends on: the model, dtype and device, the series' values, the window, the
encoding and the decoding settings, and lvtime's version.

Read through :func:`lvtime.layout.read_json` and checked (a file that does not hold a
finite score is ignored and recomputed); written atomically. No torch.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from lvtime import __version__, folders, layout
from lvtime.errors import RunFolderError

FOLDER = ".lvtime-step0"


def cache_dir(run_dir: Path) -> Path | None:
    """Where runs beside ``run_dir`` share step 0 (its sweep's folder), or None."""
    parent = Path(run_dir).parent
    return parent / FOLDER if folders.kind_of(parent) == "sweep" else None


def key(cfg, fs, model_name: str, dtype: str, device: str) -> str:
    """A hash of everything step 0's forecasts depend on."""
    h = hashlib.sha256()
    settings = {
        "lvtime": __version__,
        "model": model_name,
        "dtype": dtype,
        "device": device,
        "indices": [int(i) for i in fs.indices],
        "window": [fs.history, fs.horizon],
        "decimals": cfg.decimals,
        "scale": cfg.scale,
        "samples": cfg.forecast_samples,
        "batch": cfg.forecast_batch,
        "seed": cfg.seed,
        "convention": cfg.convention,
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(fs.series.tobytes())
    return h.hexdigest()[:32]


def load(folder: Path | None, digest: str) -> dict | None:
    """The recorded row for ``digest`` (None: none, or one that does not check)."""
    if folder is None:
        return None
    try:
        row = layout.read_json(folder / f"{digest}.json")
    except RunFolderError:
        return None
    score = row.get("score") if isinstance(row, dict) else None
    if not isinstance(score, float | int) or not math.isfinite(score):
        return None
    return row


def store(folder: Path | None, digest: str, row: dict) -> None:
    if folder is None:
        return
    folder.mkdir(exist_ok=True)
    layout.write_json(folder / f"{digest}.json", row)
