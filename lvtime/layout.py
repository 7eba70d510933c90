"""A run folder's files, by kind: the one module that names them, reads and writes them.

finetune run (``lvtime finetune``, and each configuration of a sweep)::

    config.json     the resolved FinetuneConfig, the plan's data and estimate, versions
    metrics.jsonl   one row per optimizer step and per validation
    summary.json    what the run did (:class:`RunSummary`), written when it ends
    checkpoints/    step-N/: adapter + state.pt (see lvtime.checkpoints)
    final/          the adapter, PEFT format
    best/           with --forecast-every: the adapter of the best forecast score, PEFT format
    (each adapter folder also holds lvtime-encoding.json: how its training text was written)
    loss.png        loss curves (plot extra)

forecast run (``lvtime baseline`` / ``lvtime forecast``)::

    metrics.json    scores of the model and the references, settings, versions
    per_series.csv  every score of every series; forecasts.npz: the arrays
    series-N.png, summary.png

sweep::

    sweep.json      the SweepConfig; results.json / .csv / .md: the ranking
    search.journal  a random/tpe search's trials (Optuna's journal file), trial-N/ its runs
    logs/NAME.log   output of each configuration's processes (--jobs)
    NAME/           a finetune run (with forecast-val/, a forecast run, when ranked by forecast)

Every folder lvtime made holds ``.lvtime-folder`` (its kind, see lvtime.folders) and,
while a process writes it, ``.lvtime-lock``. JSON is written atomically and never holds
NaN (``null`` instead: NaN is not JSON). A corrupt file reads as a one-line error
naming it. No torch.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lvtime.config import FinetuneConfig, Scale, SweepConfig, provenance
from lvtime.errors import RunFolderError, UsageError

# every folder
MARKER = ".lvtime-folder"
LOCK = ".lvtime-lock"
# finetune run
CONFIG = "config.json"
METRICS_LOG = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
FINAL = "final"
BEST = "best"
LOSS_PLOT = "loss.png"
ADAPTER_ENCODING = "lvtime-encoding.json"  # in an adapter folder, beside PEFT's files
# forecast run
FORECAST_METRICS = "metrics.json"
PER_SERIES = "per_series.csv"
FORECASTS = "forecasts.npz"
FORECAST_PLOT = "summary.png"


def series_plot(out: Path, series: int) -> Path:
    return out / f"series-{series}.png"


def series_plots(out: Path) -> list[Path]:
    """The forecast run's series figures, in series order."""
    found = [(p.stem.removeprefix("series-"), p) for p in out.glob("series-*.png")]
    return [p for number, p in sorted((int(n), p) for n, p in found if n.isdigit())]


# sweep
SWEEP = "sweep.json"
RESULTS = "results"  # .json, .csv, .md
LOGS = "logs"
SEARCH_JOURNAL = "search.journal"  # Optuna's record of a random/tpe search's trials
SWEEP_PLOTS = {"forecast": "forecast.png", "heatmap": "heatmap.png", "curves": "curves.png"}
FORECAST_VAL = "forecast-val"  # inside a sweep's run folder, with rank_by=forecast


# --- JSON, atomically and without NaN --------------------------------------------------


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float as None (NaN and inf are not JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: Path, doc: Any) -> None:
    """``doc`` as indented JSON, replacing ``path`` atomically (complete or absent)."""
    text = json.dumps(_finite(doc), indent=2, default=_plain, allow_nan=False) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy values
        return _finite(obj.tolist())
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


MAX_FILE_BYTES = 64 * 2**20  # no file of a run folder comes near this; a link to a huge one is refused


def read_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path`` -- the one way files of a run or study folder are read, so a
    folder someone handed over cannot hang or exhaust a command: a regular file only (a
    FIFO, a device or a link to ``/dev/zero`` is refused, and opened without blocking to
    find out), at most ``limit`` bytes. Errors are one line (:class:`RunFolderError`)."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise RunFolderError(f"{path}: missing") from None
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RunFolderError(f"{path}: not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise RunFolderError(f"{path}: larger than {limit // 2**20} MiB, not a file lvtime wrote")
    return data


def read_json(path: Path) -> Any:
    """The JSON in ``path`` (read by :func:`read_bytes`); a missing, unreadable or corrupt
    file is one line."""
    try:
        return json.loads(read_bytes(path).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 JSON"
        raise RunFolderError(f"{path}: corrupt ({reason}); move it aside or start over with --force") from None


# --- finetune run ---------------------------------------------------------------------


class RunSummary(BaseModel):
    """``summary.json``: what a finetune run did, written when an invocation ends."""

    model_config = ConfigDict(extra="allow")  # folders from other lvtime versions keep their extras

    run: str
    model: str
    steps: int
    val_loss_before: float | None = None
    val_loss_after: float | None = None
    val_losses: dict[int, float] = {}
    val_loss_vocabulary: str = "full"
    trainable_params: int | None = None
    trainable_percent: float | None = None
    tokens: int = 0
    flops_total: float = 0.0
    flops_this_invocation: float = 0.0
    budget_fraction_this_invocation: float = 0.0
    wall_s: float = 0.0
    ledger_entry: str | None = None
    finished_at: str | None = None
    forecast_scores: dict[int, float] = {}  # step -> ranking score, with --forecast-every
    best_step: int | None = None
    best_score: float | None = None
    best_flops: float | None = None
    stopped_early: bool = False
    pruned: bool = False  # stopped by a search's pruner
    already_complete: bool = Field(False, exclude=True)  # a --resume that found nothing left to do


def write_config(run_dir: Path, cfg: FinetuneConfig, extra: dict) -> None:
    write_json(run_dir / CONFIG, {"config": cfg.model_dump(mode="json"), **extra, **provenance()})


def read_config(run_dir: Path) -> FinetuneConfig:
    """The config of an existing run folder (``--resume``); one-line errors."""
    path = run_dir / CONFIG
    if not path.is_file():
        raise UsageError(f"{run_dir}: not a run folder (no {CONFIG})")
    try:
        doc = read_json(path)
        return FinetuneConfig.model_validate(doc["config"])
    except (RunFolderError, KeyError, TypeError, ValidationError) as exc:
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc).split(": ")[-1]
        raise UsageError(f"{path}: corrupt or not an lvtime run config ({reason})") from None


def append_metrics(run_dir: Path, row: dict) -> None:
    with open(run_dir / METRICS_LOG, "a") as f:
        f.write(json.dumps(_finite(row), allow_nan=False) + "\n")


def read_metrics(run_dir: Path) -> list[dict]:
    """Rows of ``metrics.jsonl`` (a row torn by a kill is skipped)."""
    path = run_dir / METRICS_LOG
    if not path.exists():
        return []
    rows = []
    for line in read_bytes(path).decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def trim_metrics(run_dir: Path, step: int) -> None:
    """Drop rows after ``step``: a run killed after logging them redoes those steps."""
    path = run_dir / METRICS_LOG
    if path.exists():
        kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    write_json(run_dir / SUMMARY, summary.model_dump(mode="json"))


def read_summary(run_dir: Path) -> RunSummary | None:
    """The run's summary; None when it has none yet; a corrupt one is one line."""
    path = run_dir / SUMMARY
    if not path.exists():
        return None
    try:
        return RunSummary.model_validate(read_json(path))
    except ValidationError as exc:
        raise RunFolderError(f"{path}: not an lvtime run summary ({exc.errors()[0]['msg']})") from None


def is_finished(run_dir: Path) -> bool:
    """A finetune run that wrote its summary and final adapter."""
    return (run_dir / SUMMARY).exists() and (run_dir / FINAL).exists()


def final_adapter(run_dir: Path | str) -> Path:
    return Path(run_dir) / FINAL


def best_adapter(run_dir: Path | str) -> Path:
    """The adapter of the step with the best forecast score (``--forecast-every``)."""
    return Path(run_dir) / BEST


class AdapterEncoding(BaseModel):
    """``lvtime-encoding.json`` of an adapter folder: how the text it was trained on was
    written, so that forecasts write their prompts the same way."""

    model_config = ConfigDict(extra="allow")

    scale: Scale = "series"


def write_adapter_encoding(adapter: Path, cfg: FinetuneConfig) -> None:
    write_json(adapter / ADAPTER_ENCODING, AdapterEncoding(scale=cfg.scale))


def read_adapter_encoding(adapter: Path | str) -> AdapterEncoding:
    """An adapter's encoding; an adapter without the file (PEFT's own, or lvtime's from
    before ``--scale``) was trained on one shared scale per series."""
    path = Path(adapter) / ADAPTER_ENCODING
    if not path.exists():
        return AdapterEncoding()
    try:
        return AdapterEncoding.model_validate(read_json(path))
    except ValidationError as exc:
        raise RunFolderError(f"{path}: corrupt ({exc.errors()[0]['msg']})") from None


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / CHECKPOINTS


# --- forecast run ---------------------------------------------------------------------


def write_forecast_metrics(out: Path, doc: dict) -> None:
    write_json(out / FORECAST_METRICS, doc)


def read_forecast_metrics(out: Path) -> dict | None:
    """A forecast run's ``metrics.json``; None when it has none yet."""
    path = out / FORECAST_METRICS
    if not path.exists():
        return None
    doc = read_json(path)
    if not isinstance(doc, dict) or not {"metrics", "gap"} <= doc.keys():
        raise RunFolderError(f"{path}: not an lvtime forecast report")
    return doc


# --- sweep ----------------------------------------------------------------------------


def write_sweep(sweep_dir: Path, spec: SweepConfig) -> None:
    write_json(sweep_dir / SWEEP, spec.model_dump(mode="json"))


def results_path(sweep_dir: Path, suffix: str) -> Path:
    return sweep_dir / f"{RESULTS}.{suffix}"


def trial_dir(sweep_dir: Path, number: int) -> Path:
    return sweep_dir / f"trial-{number}"


def forecast_dir(run_dir: Path | str) -> Path:
    """Where a sweep's ranking forecast of a run goes."""
    return Path(run_dir) / FORECAST_VAL


def log_path(sweep_dir: Path, name: str) -> Path:
    return sweep_dir / LOGS / f"{name}.log"


# --- what lvtime made ------------------------------------------------------------------


def kind_from_files(path: Path) -> str | None:
    """For folders from before the marker: the kind their lvtime files show, else None."""
    for name in (CONFIG, FORECAST_METRICS, SWEEP):
        try:
            doc = json.loads(read_bytes(path / name))
        except (RunFolderError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        if isinstance(doc.get("versions"), dict) and "lvtime" in doc["versions"]:
            return "finetune" if name == CONFIG else str(doc.get("kind", "forecast"))
        if name == SWEEP and {"base", "grid"} <= doc.keys():
            return "sweep"
    return None
