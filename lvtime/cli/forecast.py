"""``lvtime baseline`` and ``lvtime forecast``: score a model's forecasts on a split."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import typer

from lvtime.cli.output import LEDGER_HELP, build, console, err_console, field_option, flops_str, pct, print_json
from lvtime.config import DEFAULT_MODEL
from lvtime.data import DEFAULT_DATA_FILE


def register(app: typer.Typer) -> None:
    app.command("baseline")(baseline)
    app.command("forecast")(forecast)


def _options():
    """The options both commands share, as Typer defaults (one definition, two commands);
    defaults, help, bounds and choices come from ForecastConfig."""
    from lvtime.config import ForecastConfig

    def opt(name: str, *flags: str, **overrides):
        return field_option(ForecastConfig, name, *flags, **overrides)

    shared = ("split", "limit", "history", "horizon", "decimals", "int_digits", "batch_size", "num_samples")
    shared += ("temperature", "top_p", "seed", "device", "dtype", "convention", "plot_series")
    return dict(
        data=typer.Argument(None, help="HDF5 dataset (default: ./lotka_volterra_data.h5)."),
        series=opt("series", "--series", "-s", default=None),
        **{name: opt(name) for name in shared},
        out=opt("out", "--out", "-o"),
        references=opt(
            "references",
            default="last_value,linear,seasonal,ode",
            help="Reference forecasts scored beside the model, comma-separated, or none. "
            "ode fits the predator-prey equations to each history: the physical limit.",
        ),
        force=typer.Option(False, "--force", help="Replace an --out folder that lvtime made."),
        label=typer.Option(None, help="Ledger label (default: kind, model or run, series)."),
        dry_run=typer.Option(False, "--dry-run", help="Print the plan and cost; load no weights."),
        allow_over_budget=typer.Option(False, "--allow-over-budget", help="Run even if over budget."),
        ledger=typer.Option(None, "--ledger", help=LEDGER_HELP),
        quiet=typer.Option(False, "--quiet", "-q", help="No progress bar."),
        as_json=typer.Option(False, "--json", help="JSON on stdout."),
    )


_O = _options()


def baseline(
    data: Path = _O["data"],
    model: str = typer.Option(DEFAULT_MODEL, help="Hub id, folder, .gguf or preset."),
    series: list[int] = _O["series"],
    split: str = _O["split"],
    limit: int = _O["limit"],
    history: int = _O["history"],
    horizon: int = _O["horizon"],
    decimals: int = _O["decimals"],
    int_digits: int = _O["int_digits"],
    batch_size: int = _O["batch_size"],
    num_samples: int = _O["num_samples"],
    temperature: float = _O["temperature"],
    top_p: float = _O["top_p"],
    seed: int = _O["seed"],
    device: str = _O["device"],
    dtype: str = _O["dtype"],
    convention: str = _O["convention"],
    out: Path = _O["out"],
    plot_series: int = _O["plot_series"],
    references: str = _O["references"],
    force: bool = _O["force"],
    label: str = _O["label"],
    dry_run: bool = _O["dry_run"],
    allow_over_budget: bool = _O["allow_over_budget"],
    ledger: Path = _O["ledger"],
    quiet: bool = _O["quiet"],
    as_json: bool = _O["as_json"],
) -> None:
    """Zero-shot forecasts of the untrained model, scored against the truth.

    Example:\n
      lvtime baseline --model smollm2-135m-instruct --split test --out runs/baseline
    """
    _run(locals(), adapter=None)


def forecast(**args) -> None:
    """Forecasts with a fine-tuned LoRA adapter (merged for speed), scored against the truth.

    Example:\n
      lvtime forecast --adapter runs/r8/final --split test --out runs/r8/forecast
    """
    _run(args, adapter=str(args.pop("adapter")))


def _forecast_signature() -> inspect.Signature:
    """baseline's options, plus --adapter, with the model defaulting to the adapter's."""
    params = []
    for p in inspect.signature(baseline).parameters.values():
        if p.name == "model":
            p = p.replace(default=typer.Option(None, help="Base model (default: the adapter's)."))
        params.append(p)
        if p.name == "data":
            adapter = typer.Option(..., "--adapter", "-a", help="LoRA adapter folder (e.g. runs/NAME/final).")
            params.append(inspect.Parameter("adapter", p.kind, default=adapter, annotation=Path))
    return inspect.Signature(params, return_annotation=None)


# what Typer reads: one option list for two commands
forecast.__signature__ = _forecast_signature()
forecast.__annotations__ = {**typing.get_type_hints(baseline), "adapter": Path}


def _run(args: dict, adapter: str | None) -> None:
    from lvtime import forecast_run
    from lvtime.ledger import Ledger

    lg = Ledger(args["ledger"])
    settings = _settings(args, adapter)
    as_json = args["as_json"]
    if args["dry_run"]:
        _print_dry_run(forecast_run.plan(settings, lg), settings, as_json)
        return
    bar, on_plan, on_batch = _progress(settings.num_samples, show=not args["quiet"] and not as_json)
    try:
        report = forecast_run.run(
            settings, lg, args["allow_over_budget"], on_batch, on_plan=on_plan, label=args["label"], force=args["force"]
        )
    finally:
        if bar and bar.live.is_started:
            bar.stop()
    if as_json:
        print_json(report)
        return
    _print_report(report, lg.budget())


def _settings(args: dict, adapter: str | None):
    """ForecastConfig from the command's options (its fields, by name)."""
    from lvtime.config import ForecastConfig

    values = {k: v for k, v in args.items() if k in ForecastConfig.model_fields}
    references = args["references"].strip()
    values.update(
        data=str(args["data"] or DEFAULT_DATA_FILE),
        adapter=adapter,
        series=list(args["series"] or []),
        out=str(args["out"]) if args["out"] else None,
        references=[] if references == "none" else [r for r in references.split(",") if r],
    )
    return build(ForecastConfig, **values)


def _print_dry_run(p: dict, settings, as_json: bool) -> None:
    doc = {k: v for k, v in p.items() if k not in ("dataset", "architecture", "series")}
    doc["remaining_after"] = p["budget"]["remaining"] - p["estimate"]
    if as_json:
        print_json(doc)
        return
    console.print(
        f"{p['n_series']} series with {p['model']}"
        + (f" + adapter {settings.adapter}" if settings.adapter else "")
        + f": prompts ~{p['prompt_tokens_mean']:.0f} tokens, {settings.horizon} steps each; "
        f"cost at most {flops_str(p['estimate'])} FLOPs ({pct(p['estimate'], p['budget']['budget'])}"
        f" of budget); remaining after: {flops_str(doc['remaining_after'])}"
    )


def _progress(num_samples: int, show: bool):
    """(bar, on_plan, on_batch): a progress bar over sequences, or Nones when hidden."""
    if not show:
        return None, None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]forecast"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sequences"),
        TimeRemainingColumn(),
        console=err_console,
    )
    task = bar.add_task("forecast", total=None)

    def on_plan(p: dict) -> None:
        bar.update(task, total=p["n_series"] * num_samples)
        bar.start()  # only once the plan stands: errors before it print alone

    def on_batch(k: int) -> None:
        bar.update(task, advance=k)

    return bar, on_plan, on_batch


LABELS = {"ode": "ode (limit)"}


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
                table.add_row(species, LABELS.get(name, name), *(_num(v) for v in values[species]))
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
            table.add_row(species, LABELS.get(name, name), *cells)
        table.add_section()
    console.print(table)
    console.print(_horizon_table(report["mae_by_horizon"]))
    g = report["gap"]
    line = f"median MASE (mean of species): model {g['model']:.3g}"
    if g["best_reference"]:
        line += f", best reference {g['best_reference']} {g['best_reference_score']:.3g}"
    if g["ode_limit"] is not None:
        fallbacks = report["references"]["ode"]["fallbacks"]
        line += f", ODE limit {g['ode_limit']:.3g}" + (
            f" ({fallbacks} fits fell back to last value)" if fallbacks else ""
        )
    console.print(line)
    console.print(
        f"parse failures: {report['parse_failures']}; spent {flops_str(report['flops'])} FLOPs "
        f"({pct(report['flops'], budget)} of budget; reserved {flops_str(report['flops_estimate'])})"
        + (f"; results in {report['out']}" if report.get("out") else "")
    )
