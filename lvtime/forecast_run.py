"""``baseline`` and ``forecast`` runs: plan, budget, generate, score, write results.

A baseline is the base model with no adapter; a forecast loads a LoRA adapter and
merges it (so generation runs at base-model speed). Both reserve the upper-bound
generation cost in the ledger and record the exact cost of what was processed.
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import numpy as np

from lvtime import folders, layout
from lvtime.config import DEFAULT_MODEL, ForecastConfig, provenance
from lvtime.errors import UsageError
from lvtime.ledger import Ledger

__all__ = ["ForecastConfig", "plan", "run"]


def resolve_model(s: ForecastConfig) -> str:
    """The base model: --model, else the adapter's (checked here, before any FLOP is
    reserved), else the study's."""
    base = None
    if s.adapter:
        from lvtime.lora import check_adapter

        base = check_adapter(s.adapter).get("base_model_name_or_path")
    if s.model:
        return s.model
    if s.adapter and not base:
        raise UsageError(f"{s.adapter}: adapter names no base model; pass --model")
    return base or DEFAULT_MODEL


def resolve_scale(s: ForecastConfig) -> str:
    """--scale, else the scale the adapter's training text was written with, else one per series."""
    trained = layout.read_adapter_encoding(s.adapter).scale if s.adapter else None
    if s.scale and trained and s.scale != trained:
        raise UsageError(
            f"{s.adapter}: trained with --scale {trained}, so its prompts must be too; drop --scale {s.scale}"
        )
    return s.scale or trained or "series"


def plan(s: ForecastConfig, ledger: Ledger) -> dict:
    """Series, prompt lengths and the upper-bound cost, without loading weights."""
    from lvtime import data as lvdata
    from lvtime.generation import check_fits, estimate, prompts_for
    from lvtime.models import architecture_for, tokenizer_for

    ds = lvdata.load_dataset(s.data)
    if s.history + s.horizon > ds.n_points:
        raise UsageError(f"--history {s.history} + --horizon {s.horizon} exceeds the {ds.n_points} steps per series")
    idx = lvdata.select_series(ds.n_series, s.series or None, None if s.series else s.split, s.limit)
    if len(idx) == 0:
        raise UsageError("no series selected")
    model = resolve_model(s)
    scale = resolve_scale(s)
    arch = architecture_for(model)
    check_fits(arch, s.history, s.horizon, s.decimals, s.int_digits)
    tokenizer = tokenizer_for(model)
    prompts, _ = prompts_for(ds.trajectories[idx, : s.history], tokenizer, s.decimals, scale)
    check_fits(arch, s.history, s.horizon, s.decimals, s.int_digits, [len(p) for p in prompts])
    cost = estimate(
        arch, [len(p) for p in prompts], s.horizon, s.decimals, s.int_digits, s.batch_size, s.num_samples, s.convention
    )
    return {
        "model": model,
        "adapter": s.adapter,
        "scale": scale,
        "series": idx.tolist(),
        "n_series": len(idx),
        "references": list(s.references),
        "prompt_tokens_mean": float(np.mean([len(p) for p in prompts])),
        "estimate": cost,
        "budget": ledger.read().totals(),
        "dataset": ds,
        "dt": lvdata.time_step(ds),
        "architecture": arch,
    }


def run(
    s: ForecastConfig,
    ledger: Ledger | None = None,
    allow_over_budget: bool = False,
    on_batch=None,
    kind: str | None = None,
    on_plan=None,
    label: str | None = None,
    force: bool = False,
) -> dict:
    """Forecast, score and (with ``out``) write results. Returns the JSON-able report.
    ``force`` replaces an ``out`` folder that lvtime made."""
    ledger = ledger or Ledger()
    kind = kind or ("forecast" if s.adapter else "baseline")
    out = check_out_dir(s, ledger, force, kind)  # before any work: a bad --out costs nothing
    with folders.held(out) if out else contextlib.nullcontext():  # one process writes a folder
        return _run(s, out, ledger, allow_over_budget, on_batch, kind, on_plan, label, force)


def _run(s: ForecastConfig, out, ledger: Ledger, allow_over_budget, on_batch, kind, on_plan, label, force) -> dict:
    from lvtime import metrics, references

    p = plan(s, ledger)
    s = s.model_copy(update={"scale": p["scale"]})  # recorded as used
    if on_plan:
        on_plan(p)
    idx = np.asarray(p["series"])
    traj = p["dataset"].trajectories[idx]
    history = traj[:, : s.history]
    truth = traj[:, s.history : s.history + s.horizon]
    # references cost no model FLOPs: computed first, so a failure among them spends nothing
    refs, refs_info = references.compute(history, s.horizon, p["dt"], s.references)
    name = Path(s.adapter).parent.name if s.adapter else p["model"]
    with ledger.reservation(
        label or f"{kind} {name} ({p['n_series']} series)",
        p["estimate"],
        kind=kind,
        config={**s.model_dump(mode="json"), "model": p["model"]},
        outputs=[str(out)] if out else [],
        allow_over_budget=allow_over_budget,
    ) as reservation:
        if out:
            if force:
                folders.replace(out, kind, _inputs(s))
            else:
                folders.create(out, kind)
        loaded = _load(s, p["model"])  # a model or adapter that does not load has cost nothing
        # A run that stops mid-generation is charged its whole estimate: the ledger may
        # over-count, never under-count.
        reservation.spent = p["estimate"]
        result = _forecast(s, loaded, traj, idx, on_batch)
        reservation.spent = result.flops
        scores = metrics.score(result.forecast, truth, history, refs, result.samples)
        report = {
            "kind": kind,
            "model": p["model"],
            "adapter": s.adapter,
            **_summary(s, p, result, ledger.budget()),
            "ledger_entry": reservation.id,
            "metrics": {name: v["aggregate"] for name, v in scores.items()},
            "references": refs_info,
            "gap": gap(scores),
            "mae_by_horizon": metrics.by_horizon({"model": result.forecast, **refs}, truth),
        }
        if out:
            write_results(out, report, result, history, truth, scores, s, refs)
            report["out"] = str(out)
    return report


def _load(s: ForecastConfig, model: str):
    """The model, with the adapter merged (generation then runs at base-model speed)."""
    from lvtime import lora
    from lvtime.models import load_model

    loaded = load_model(model, s.device, s.dtype)
    if s.adapter:
        lora.load_adapter(loaded.model, s.adapter)
        lora.merge(loaded.model)
    return loaded


def _forecast(s: ForecastConfig, loaded, traj: np.ndarray, idx: np.ndarray, on_batch):
    """Forecast the selected series."""
    from lvtime.generation import forecast

    sampling = dict(num_samples=s.num_samples, temperature=s.temperature, top_p=s.top_p, seed=s.seed)
    return forecast(
        loaded.model, loaded.tokenizer, loaded.architecture, traj, idx, s.history, s.horizon, s.decimals,
        s.int_digits, s.batch_size, convention=s.convention, on_batch=on_batch, scale=s.scale, **sampling,
    )  # fmt: skip


def _summary(s: ForecastConfig, p: dict, result, budget: float) -> dict:
    return {
        "n_series": p["n_series"],
        "history": s.history,
        "horizon": s.horizon,
        "num_samples": s.num_samples,
        "parse_failures": result.parse_failures,
        "flops": result.flops,
        "flops_estimate": p["estimate"],
        "budget_fraction": result.flops / budget,
    }


def gap(scores: dict) -> dict:
    """The model's median MASE (mean over species) beside the best naive reference's
    and the ODE limit's: how far the model is from each, at one glance."""
    from lvtime.metrics import ranking
    from lvtime.reference_table import LIMIT, best_naive

    mase = {name: ranking(v["aggregate"]) for name, v in scores.items()}
    best, best_score = best_naive(mase)
    return {
        "metric": "median MASE, mean of prey and predator",
        "model": mase["model"],
        "best_reference": best,
        "best_reference_score": best_score,
        "ode_limit": mase.get(LIMIT),
    }


def _inputs(s: ForecastConfig) -> tuple[str | None, ...]:
    """What a forecast reads, which ``--force`` must never delete."""
    return (s.data, s.adapter, s.model)


def check_out_dir(s: ForecastConfig, ledger: Ledger, force: bool = False, kind: str = "forecast") -> Path | None:
    """``--out`` checked before anything is spent: a new or empty folder lvtime may write
    (or, with ``force``, a forecast folder lvtime made that holds none of the inputs)."""
    if s.out is None:
        return None
    out = folders.check_out(s.out, ledger.path)
    if force:
        folders.check_replaceable(out, kind, _inputs(s))
    elif not folders.is_empty(out):
        raise UsageError(f"{out}: already exists and is not empty; choose another --out (or --force)")
    return out


def write_results(out: Path, report: dict, result, history, truth, scores, s: ForecastConfig, refs: dict) -> None:
    from lvtime import llmtime, metrics, plots

    alphas = llmtime.per_species(result.alphas)
    layout.write_forecast_metrics(out, {**report, "settings": s.model_dump(), **provenance()})
    with open(out / layout.PER_SERIES, "w", newline="") as f:
        w = csv.writer(f)
        columns = (*metrics.METRICS, *metrics.SAMPLE_METRICS)
        w.writerow(["series", "alpha", "forecaster", "species", *columns])
        for i, series in enumerate(result.series.tolist()):
            for name, v in scores.items():
                for sp, species in enumerate(metrics.SPECIES):
                    values = [v["per_series"][m][i, sp] if m in v["per_series"] else None for m in columns]
                    w.writerow(
                        [series, f"{alphas[i, sp]:.6g}", name, species]
                        + ["" if x is None else f"{x:.6g}" for x in values]
                    )
    np.savez_compressed(
        out / layout.FORECASTS,
        series=result.series,
        alpha=result.alphas,
        history=history,
        truth=truth,
        forecast=result.forecast,
        **{f"reference_{name}": f for name, f in refs.items()},
        low=result.low,
        high=result.high,
        samples=result.samples,
    )
    for i in range(min(s.plot_series, len(result.series))):
        n = int(result.series[i])
        plots.forecast_figure(
            layout.series_plot(out, n),
            n,
            history[i],
            truth[i],
            result.forecast[i],
            result.low[i],
            result.high[i],
            f"series {n} ({report['kind']})",
            {name: f[i] for name, f in refs.items()},
        )
    plots.summary_figure(out / layout.FORECAST_PLOT, {k: v["per_series"]["mae"] for k, v in scores.items()})
