"""A working directory's whole study as data: the ledger, every run folder lvtime made,
what each run spent and scored, and what is missing or broken -- the content of
``lvtime report`` (rendered to HTML by :mod:`lvtime.report_page`, or printed as JSON).

Everything is read through :mod:`lvtime.layout`, :mod:`lvtime.folders` and
:mod:`lvtime.ledger`; nothing is written. A file that is missing or corrupt becomes a
note on its run, never an error: the report shows what is there. (A corrupt ledger is
the one exception -- it is the budget, and every command refuses it the same way.)
No torch, no numpy.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from lvtime import __version__, folders, layout
from lvtime.config import FinetuneConfig, command_args
from lvtime.errors import LvtimeError
from lvtime.ledger import Ledger

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
    if cfg is None and not notes:
        notes.append("no config.json (a run from an older lvtime, or one stopped before it started)")
    rows = _try(notes, layout.read_metrics, path) or []
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    scored = [
        {"score": f["score"], "from": f["path"]}
        for f in forecasts
        if f["adapter_run"] == _rel(root, path) and f.get("score") is not None
    ]
    logged = [r for r in rows if "forecast_score" in r]  # --forecast-every: scores during training
    curve = [{"flops": r["flops"], "score": r["forecast_score"], "step": r["step"]} for r in logged]
    scored += [{"score": p["score"], "from": f"step {p['step']} (in training)"} for p in curve]
    best = min(scored, key=lambda f: f["score"], default=None)
    return {
        "path": _rel(root, path),
        "name": path.name,
        "state": _state(path),
        "options": _options(cfg),
        "steps": summary.steps if summary else max((r.get("step", 0) for r in rows), default=0),
        "planned_steps": cfg.steps if cfg else None,
        "flops": summary.flops_total if summary else next((r["flops"] for r in reversed(rows) if "flops" in r), None),
        "val_loss_before": val[0][1] if val and val[0][0] == 0 else None,
        "val_loss_after": val[-1][1] if val else None,
        "wall_s": summary.wall_s if summary else None,
        "best_score": best["score"] if best else None,
        "best_score_from": best["from"] if best else None,
        "forecast_curve": curve,
        "loss_plot": _file(root, path / layout.LOSS_PLOT),
        "notes": notes,
    }


def _state(path: Path) -> str:
    if folders.holder(path):
        return "running"
    if layout.is_finished(path):
        return "finished"
    return "interrupted" if layout.checkpoints_dir(path).exists() else "not started"


def _options(cfg: FinetuneConfig | None) -> str:
    """The options that differ from the defaults, as a command line would give them."""
    return "" if cfg is None else " ".join(command_args(cfg, skip=("out", "data")))


def _file(root: Path, path: Path) -> str | None:
    return _rel(root, path) if path.is_file() else None


def forecast_record(root: Path, path: Path, kind: str) -> dict[str, Any]:
    notes: list[str] = []
    doc = _try(notes, layout.read_forecast_metrics, path)
    if doc is None:
        notes = notes or ["no metrics.json yet (running, stopped, or from an older lvtime)"]
        return {"path": _rel(root, path), "kind": kind, "adapter_run": None, "score": None, "notes": notes}
    adapter = doc.get("adapter")
    gap = doc.get("gap", {})
    plots = layout.series_plots(path)
    return {
        "path": _rel(root, path),
        "kind": doc.get("kind", kind),
        "model": doc.get("model"),
        "adapter_run": _rel(root, Path(adapter).parent) if adapter else None,
        "n_series": doc.get("n_series"),
        "horizon": doc.get("horizon"),
        "num_samples": doc.get("num_samples", 1),
        "score": gap.get("model"),
        "best_reference": gap.get("best_reference"),
        "best_reference_score": gap.get("best_reference_score"),
        "ode_limit": gap.get("ode_limit"),
        "metrics": _medians(doc.get("metrics", {})),
        "flops": doc.get("flops"),
        "parse_failures": doc.get("parse_failures"),
        "plots": [_rel(root, p) for p in plots[:2]],
        "notes": notes,
    }


def _medians(metrics: dict) -> dict[str, dict[str, dict[str, float | None]]]:
    """forecaster -> species -> metric -> median over series."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for name, agg in metrics.items():
        out[name] = {
            sp: {m: (v.get("median") if isinstance(v, dict) else None) for m, v in agg.get(sp, {}).items()}
            for sp in SPECIES
        }
    return out


def sweep(root: Path, path: Path) -> dict[str, Any]:
    notes: list[str] = []
    spec = _try(notes, layout.read_json, path / layout.SWEEP) or {}
    rows = _try(notes, layout.read_json, layout.results_path(path, "json")) if spec else None
    if rows is None and not notes:
        notes.append("no results.json yet: the sweep has not collected its runs")
    figures = {k: _file(root, path / v) for k, v in layout.SWEEP_PLOTS.items()}
    search = spec.get("search", "grid")
    return {
        "path": _rel(root, path),
        "search": search,  # random or tpe: ranked by forecasts, trials may be pruned
        "rank_by": "forecast" if search != "grid" else spec.get("rank_by", "val_loss"),
        "grid": {**spec.get("grid", {}), **spec.get("space", {})},
        "results": rows if isinstance(rows, list) else [],
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
