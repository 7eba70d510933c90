"""A working directory's whole study as data: the ledger, every run folder lvtime made,
what each run spent and scored, and what is missing or broken -- the content of
``lvtime report`` (rendered to HTML by :mod:`lvtime.report_page`, or printed as JSON).

Everything is read through :mod:`lvtime.layout` (its one safe reader: a regular file,
bounded in size), :mod:`lvtime.folders` and :mod:`lvtime.ledger`, and every field the
page uses is checked against a schema below (its type; numbers finite and within
``MAX_NUMBER``); nothing is written. A file that is missing, corrupt or of the wrong
shape becomes a note on its run, never an error: the report shows what is there. (A
corrupt ledger is the one exception -- it is the budget, and every command refuses it
the same way.) Relative paths a run recorded (a forecast's adapter) are read against the
study folder, wherever ``lvtime report`` runs from. No torch, no numpy.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from lvtime import __version__, folders, layout
from lvtime.config import FinetuneConfig, command_args
from lvtime.errors import LvtimeError, first_error
from lvtime.ledger import Ledger
from lvtime.shell import command_line

MAX_NUMBER = 1e30  # no score or FLOP count comes near; beyond it a hand-edited file is a note
MAX_DEPTH = 4  # run folders sit at runs/NAME or runs/SWEEP/NAME(/forecast-val)
SKIP = {".git", ".venv", "venv", "node_modules", "__pycache__", ".ci-venv"}
SPECIES = ("prey", "predator")


def collect(root: Path, ledger: Ledger) -> dict[str, Any]:
    """The report's content. ``root`` is the working directory; run paths are relative to it."""
    found = find_folders(root)
    forecasts = [forecast_record(root, p, k) for p, k in found if k in ("forecast", "baseline")]
    runs = [run_record(root, p, forecasts) for p, k in found if k == "finetune"]
    doc = {
        "root": str(root),
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "lvtime": __version__,
        "budget": budget(ledger),
        "runs": runs,
        "forecasts": forecasts,
        "sweeps": [sweep(root, p) for p, k in found if k == "sweep"],
    }
    doc["frontier"] = frontier(runs, forecasts)
    return doc


def find_folders(root: Path) -> list[tuple[Path, str]]:
    """(folder, kind) for every folder lvtime made below ``root`` (links not followed)."""
    found = []
    for top, dirs, _ in os.walk(root):
        depth = len(Path(top).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith(".") and depth < MAX_DEPTH)
        kind = folders.kind_of(Path(top)) if Path(top) != root else None
        if kind:
            found.append((Path(top), kind))
    return found


# --- what the page reads of each file, checked -------------------------------------------

Number = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_NUMBER, le=MAX_NUMBER)]
_VIEW = ConfigDict(extra="ignore")  # other fields are kept in the files, not read here


class _Gap(BaseModel):
    model_config = _VIEW
    model: Number | None = None
    best_reference: str | None = None
    best_reference_score: Number | None = None
    ode_limit: Number | None = None


class ForecastView(BaseModel):
    """What the page shows of a forecast run's ``metrics.json``."""

    model_config = _VIEW
    kind: str | None = None
    model: str | None = None
    adapter: str | None = None
    n_series: int | None = Field(None, ge=0)
    horizon: int | None = Field(None, ge=0)
    num_samples: int = Field(1, ge=1)
    gap: _Gap
    metrics: dict[str, dict[str, dict[str, dict[str, Number | None]]]]  # forecaster, species, metric, stat
    flops: Number | None = None
    parse_failures: int | None = None


class MetricsRow(BaseModel):
    """What the page reads of a ``metrics.jsonl`` row."""

    model_config = _VIEW
    step: int = Field(0, ge=0)
    flops: Number | None = None
    val_loss: Number | None = None
    forecast_score: Number | None = None


class SummaryView(BaseModel):
    """What the page shows of a run's ``summary.json`` (already a :class:`RunSummary`)."""

    model_config = _VIEW
    steps: int = Field(ge=0)
    flops_total: Number
    wall_s: Number


class SweepView(BaseModel):
    model_config = _VIEW
    search: str = "grid"
    rank_by: str = "val_loss"
    grid: dict[str, list[Any]] = {}
    space: dict[str, Any] = {}


class SweepRow(BaseModel):
    model_config = ConfigDict(extra="allow")  # a row's swept options are its own keys
    run: str | None = None
    out: str | None = None
    flops: Number | None = None
    val_loss: Number | None = None
    forecast_mase: Number | None = None
    pruned: bool = False


class _SweepRows(RootModel[list[SweepRow]]):
    pass


def _checked(notes: list[str], view: type[BaseModel], doc: Any, where: str) -> Any:
    """``doc`` as ``view``, or None with the first problem in ``notes``."""
    try:
        return view.model_validate(doc)
    except ValidationError as exc:
        notes.append(f"{where}: not what lvtime writes ({first_error(exc, 'file')})")
        return None


# --- the ledger ---------------------------------------------------------------------------


def budget(ledger: Ledger) -> dict[str, Any]:
    """Totals, entries, spend by kind and the cumulative spend over time."""
    data = ledger.read()  # a corrupt ledger raises: the same one-line error as every command
    entries = [{**e.model_dump(mode="json"), "counted": e.counted, "stale": e.is_stale()} for e in data.entries]
    by_kind: dict[str, float] = {}
    for e in data.entries:
        by_kind[e.kind] = by_kind.get(e.kind, 0.0) + e.counted
    timeline, total = [], 0.0
    for e in sorted(data.entries, key=lambda e: e.ended_at or e.started_at):
        total += e.counted
        timeline.append({"at": e.ended_at or e.started_at, "cumulative": total, "id": e.id})
    return {
        "path": str(ledger.path),
        "exists": ledger.exists(),
        **data.totals(),
        "by_kind": by_kind,
        "entries": entries,
        "timeline": timeline,
    }


# --- runs -----------------------------------------------------------------------------


def _rel(root: Path, path: Path) -> str:
    return os.path.relpath(path, root)


def _try(notes: list[str], read, *args):
    """``read(*args)``, or None with the reason in ``notes``."""
    try:
        return read(*args)
    except LvtimeError as exc:
        notes.append(str(exc))
        return None


def run_record(root: Path, path: Path, forecasts: list[dict]) -> dict[str, Any]:
    notes: list[str] = []
    cfg = _try(notes, layout.read_config, path)
    summary = _try(notes, layout.read_summary, path)
    if summary is not None:
        summary = _checked(notes, SummaryView, summary.model_dump(), layout.SUMMARY)
    if cfg is None and not notes:
        notes.append("no config.json (a run from an older lvtime, or one stopped before it started)")
    rows = _metrics_rows(notes, path)
    val = [(r["step"], r["val_loss"]) for r in rows if r["val_loss"] is not None]
    scored = [
        {"score": f["score"], "from": f["path"]}
        for f in forecasts
        if f["adapter_run"] == _rel(root, path) and f.get("score") is not None
    ]
    logged = [r for r in rows if r["forecast_score"] is not None and r["flops"] is not None]  # --forecast-every
    curve = [{"flops": r["flops"], "score": r["forecast_score"], "step": r["step"]} for r in logged]
    scored += [{"score": p["score"], "from": f"step {p['step']} (in training)"} for p in curve]
    best = min(scored, key=lambda f: f["score"], default=None)
    return {
        "path": _rel(root, path),
        "name": path.name,
        "state": _state(path),
        "options": _options(cfg),
        "steps": summary.steps if summary else max((r["step"] for r in rows), default=0),
        "planned_steps": cfg.steps if cfg else None,
        "flops": summary.flops_total if summary else next((r["flops"] for r in reversed(rows) if r["flops"]), None),
        "val_loss_before": val[0][1] if val and val[0][0] == 0 else None,
        "val_loss_after": val[-1][1] if val else None,
        "wall_s": summary.wall_s if summary else None,
        "best_score": best["score"] if best else None,
        "best_score_from": best["from"] if best else None,
        "forecast_curve": curve,
        "loss_plot": _file(root, path / layout.LOSS_PLOT),
        "notes": notes,
    }


def _metrics_rows(notes: list[str], path: Path) -> list[dict]:
    """The run's ``metrics.jsonl`` rows the page can use; the others are left out, in one note."""
    rows, bad = [], []
    for k, raw in enumerate(_try(notes, layout.read_metrics, path) or []):
        try:
            rows.append(MetricsRow.model_validate(raw).model_dump())
        except ValidationError as exc:
            bad.append(f"row {k + 1}: {first_error(exc, 'row')}")
    if bad:
        notes.append(f"{layout.METRICS_LOG}: {len(bad)} row(s) not what lvtime writes, left out (first: {bad[0]})")
    return rows


def _state(path: Path) -> str:
    if folders.holder(path):
        return "running"
    if layout.is_finished(path):
        return "finished"
    return "interrupted" if layout.checkpoints_dir(path).exists() else "not started"


def _options(cfg: FinetuneConfig | None) -> str:
    """The options that differ from the defaults, as a command line would give them."""
    return "" if cfg is None else command_line(command_args(cfg, skip=("out", "data")))


def _file(root: Path, path: Path) -> str | None:
    return _rel(root, path) if path.is_file() else None


def forecast_record(root: Path, path: Path, kind: str) -> dict[str, Any]:
    notes: list[str] = []
    doc = _try(notes, layout.read_forecast_metrics, path)
    view = _checked(notes, ForecastView, doc, layout.FORECAST_METRICS) if doc is not None else None
    if view is None:
        notes = notes or ["no metrics.json yet (running, stopped, or from an older lvtime)"]
        return {"path": _rel(root, path), "kind": kind, "adapter_run": None, "score": None, "notes": notes}
    adapter = view.adapter  # as the forecast was given it: relative to the study folder
    return {
        "path": _rel(root, path),
        "kind": view.kind or kind,
        "model": view.model,
        "adapter_run": _rel(root, root / Path(adapter).parent) if adapter else None,
        "n_series": view.n_series,
        "horizon": view.horizon,
        "num_samples": view.num_samples,
        "score": view.gap.model,
        "best_reference": view.gap.best_reference,
        "best_reference_score": view.gap.best_reference_score,
        "ode_limit": view.gap.ode_limit,
        "metrics": _medians(view.metrics),
        "flops": view.flops,
        "parse_failures": view.parse_failures,
        "plots": [_rel(root, p) for p in layout.series_plots(path)[:2]],
        "notes": notes,
    }


def _medians(metrics: dict) -> dict[str, dict[str, dict[str, float | None]]]:
    """forecaster -> species -> metric -> median over series."""
    return {
        name: {sp: {m: v.get("median") for m, v in agg.get(sp, {}).items()} for sp in SPECIES}
        for name, agg in metrics.items()
    }


def sweep(root: Path, path: Path) -> dict[str, Any]:
    notes: list[str] = []
    doc = _try(notes, layout.read_json, path / layout.SWEEP)
    spec = _checked(notes, SweepView, doc, layout.SWEEP) if doc is not None else None
    raw = _try(notes, layout.read_json, layout.results_path(path, "json")) if spec else None
    rows = _checked(notes, _SweepRows, raw, "results.json") if raw is not None else None
    if rows is None and not notes:
        notes.append("no results.json yet: the sweep has not collected its runs")
    figures = {k: _file(root, path / v) for k, v in layout.SWEEP_PLOTS.items()}
    spec = spec or SweepView()
    return {
        "path": _rel(root, path),
        "search": spec.search,  # random or tpe: ranked by forecasts, trials may be pruned
        "rank_by": "forecast" if spec.search != "grid" else spec.rank_by,
        "grid": {**spec.grid, **spec.space},
        "results": [r.model_dump() for r in rows.root] if rows else [],
        "figures": {k: v for k, v in figures.items() if v},
        "notes": notes,
    }


# --- the frontier ---------------------------------------------------------------------------


def frontier(runs: list[dict], forecasts: list[dict]) -> dict[str, Any]:
    """Forecast score against training FLOPs, the best so far, and the references."""
    points = sorted(
        (
            {"flops": r["flops"], "score": r["best_score"], "run": r["path"]}
            for r in runs
            if r["best_score"] is not None
        ),
        key=lambda p: p["flops"] or 0.0,
    )
    best, line = float("inf"), []
    for p in points:
        if p["score"] < best:
            best = p["score"]
            line.append(p)
    scored = [f for f in forecasts if f.get("score") is not None]

    def median(key: str) -> float | None:
        values = [f[key] for f in scored if f.get(key) is not None]
        return statistics.median(values) if values else None

    zero_shot = [f["score"] for f in scored if f["kind"] == "baseline"]
    in_training = [{**p, "run": r["path"]} for r in runs for p in r["forecast_curve"]]
    return {
        "points": points,
        "in_training": sorted(in_training, key=lambda p: p["flops"]),
        "best_so_far": line,
        "zero_shot": statistics.median(zero_shot) if zero_shot else None,
        "best_reference": median("best_reference_score"),
        "ode_limit": median("ode_limit"),
    }
