"""``lvtime baseline`` and ``lvtime forecast``: score a model's forecasts on a split."""

from __future__ import annotations

import typer

from lvtime.cli import options
from lvtime.cli.output import console, err_console, flops_str, pct, print_json
from lvtime.config import ForecastConfig, RunFlags
from lvtime.errors import UsageError
from lvtime.reference_table import LIMIT, label


def register(app: typer.Typer) -> None:
    app.command("baseline", cls=options.Command)(options.command(ForecastConfig, RunFlags, skip=("adapter",))(baseline))
    app.command("forecast", cls=options.Command)(options.command(ForecastConfig, RunFlags)(forecast))


def baseline(given: options.Given) -> None:
    """Zero-shot forecasts of the untrained model, scored against the truth and the
    reference forecasts on the same series.

    Example:\n
      lvtime baseline --model smollm2-135m-instruct --split test --out runs/baseline
    """
    _run(given, adapter=None)


def forecast(given: options.Given) -> None:
    """Forecasts with a fine-tuned LoRA adapter (merged for speed), scored against the
    truth and the reference forecasts on the same series.

    Example:\n
      lvtime forecast --adapter runs/r8/final --split test --out runs/r8/forecast
    """
    if "adapter" not in given:
        raise UsageError("forecast needs --adapter (e.g. runs/NAME/final); `lvtime baseline` forecasts without one")
    _run(given, adapter=given.get("adapter"))


def _run(given: options.Given, adapter: str | None) -> None:
    from lvtime import forecast_run
    from lvtime.ledger import Ledger

    flags = given.build(RunFlags)
    settings = given.build(ForecastConfig, adapter=adapter)
    lg = Ledger(flags.ledger)
    if flags.dry_run:
        forecast_run.check_out_dir(settings, lg, flags.force)  # a dry run refuses what the run would
        _print_dry_run(forecast_run.plan(settings, lg), settings, flags.as_json)
        return
    bar, on_plan, on_batch = _progress(settings.num_samples, show=not flags.quiet and not flags.as_json)
    try:
        report = forecast_run.run(
            settings, lg, flags.allow_over_budget, on_batch, on_plan=on_plan, label=flags.label, force=flags.force
        )
    finally:
        if bar and bar.live.is_started:
            bar.stop()
    if flags.as_json:
        print_json(report)
        return
    _print_report(report, lg.budget())


def _print_dry_run(p: dict, settings, as_json: bool) -> None:
    doc = {k: v for k, v in p.items() if k not in ("dataset", "architecture", "series")}
    doc["remaining_after"] = p["budget"]["remaining"] - p["estimate"]
    if as_json:
        print_json(doc)
        return
    console.print(
        f"{p['n_series']} series with {p['model']}"
        + (f" + adapter {settings.adapter}" if settings.adapter else "")
        + f", one alpha per {p['scale']}: prompts ~{p['prompt_tokens_mean']:.0f} tokens, "
        f"{settings.horizon} steps each; "
        f"cost at most {flops_str(p['estimate'])} FLOPs ({pct(p['estimate'], p['budget']['budget'])}"
        f" of budget); remaining after: {flops_str(doc['remaining_after'])}"
    )


def _progress(num_samples: int, show: bool):
    """(bar, on_plan, on_batch): a progress bar over sequences, or Nones when hidden."""
    if not show:
        return None, None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("forecast", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sequences"),
        TimeRemainingColumn(),
        console=err_console.real(),
    )
    task = bar.add_task("forecast", total=None)

    def on_plan(p: dict) -> None:
        bar.update(task, total=p["n_series"] * num_samples)
        bar.start()  # only once the plan stands: errors before it print alone

    def on_batch(k: int) -> None:
        bar.update(task, advance=k)

    return bar, on_plan, on_batch


def _num(x: float) -> str:
    return f"{x:.3g}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")


def _horizon_table(by_horizon: dict):
    """Median MAE per part of the horizon: where the model wins and where it loses."""
    from rich.table import Table

    table = Table("species", "forecaster", *by_horizon["steps"], title="median MAE over horizon steps")
    table.columns[1].no_wrap = True
    for species in ("prey", "predator"):
        for name, values in by_horizon.items():
            if name != "steps":
                table.add_row(species, label(name), *(_num(v) for v in values[species]))
        table.add_section()
    return table


def _print_report(report: dict, budget: float) -> None:
    from rich.table import Table

    sampled = "crps" in report["metrics"]["model"]["prey"]
    columns = ["mae", "r2", "mase"] + (["crps", "coverage", "width"] if sampled else [])
    headers = {"mae": "MAE", "r2": "R²", "mase": "MASE", "crps": "CRPS", "coverage": "cover", "width": "width"}
    table = Table(
        "species",
        "forecaster",
        *(headers[c] for c in columns),
        title=f"{report['kind']}: {report['n_series']} series, {report['horizon']} steps "
        "(median over series; means and MSE in --json / metrics.json)",
    )
    for species in ("prey", "predator"):
        for name, agg in report["metrics"].items():
            a = agg[species]
            cells = (_num(a[m]["median"]) if m in a else "" for m in columns)
            table.add_row(species, label(name), *cells)
        table.add_section()
    console.print(table)
    console.print(_horizon_table(report["mae_by_horizon"]))
    g = report["gap"]
    line = f"median MASE (mean of species): model {g['model']:.3g}"
    if g["best_reference"]:
        line += f", best reference {label(g['best_reference'])} {g['best_reference_score']:.3g}"
    if g["ode_limit"] is not None:
        fallbacks = report["references"].get(LIMIT, {}).get("fallbacks")
        line += f", {label(LIMIT)} {g['ode_limit']:.3g}" + (
            f" ({fallbacks} fits fell back to last value)" if fallbacks else ""
        )
    console.print(line)
    console.print(
        f"parse failures: {report['parse_failures']}; spent {flops_str(report['flops'])} FLOPs "
        f"({pct(report['flops'], budget)} of budget; reserved {flops_str(report['flops_estimate'])})"
        + (f"; results in {report['out']}" if report.get("out") else "")
    )
