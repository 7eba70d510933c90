"""``lvtime sweep``: budget-planned hyperparameter grids that resume."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from lvtime.cli.output import (
    LEDGER_HELP,
    build,
    console,
    err_console,
    flops_str,
    parse_floats,
    parse_ints,
    pct,
    print_json,
)
from lvtime.config import DEFAULT_MODEL


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)


def sweep(
    data: Path = typer.Argument(None, help="HDF5 dataset (default: ./lotka_volterra_data.h5)."),
    ranks: str = typer.Option(None, help="LoRA ranks, e.g. 2,4,8."),
    lrs: str = typer.Option(None, help="Learning rates, e.g. 1e-5,5e-5,1e-4."),
    contexts: str = typer.Option(None, help="Context lengths, e.g. 128,512,768."),
    steps: int = typer.Option(None, min=0, help="Optimizer steps per run \\[default: 100]."),
    model: str = typer.Option(None, help=f"Base model \\[default: {DEFAULT_MODEL}]."),
    batch_size: int = typer.Option(None, "--batch-size", "--batch", min=1, help="Windows per step \\[default: 4]."),
    head: str = typer.Option(None, help="full or numeric \\[default: full]."),
    dtype: str = typer.Option(None, help="auto, float32, bfloat16."),
    device: str = typer.Option(None, help="auto, cpu, cuda, mps."),
    eval_every: int = typer.Option(None, min=0, help="Validate every N steps."),
    val_series: int = typer.Option(None, min=1, help="Validation series per evaluation."),
    train_series: int = typer.Option(None, min=1, help="Training series to use."),
    seed: int = typer.Option(None, help="Seed for every run."),
    fix: list[str] = typer.Option(None, "--set", help="Fix any finetune option: --set context=256 (repeatable)."),
    config: Path = typer.Option(None, "--config", help="sweep.json: {'out', 'base': {...}, 'grid': {...}}."),
    out: Path = typer.Option(None, "--out", "-o", help="Sweep folder (default: runs/sweep-TIME)."),
    rank_by: str = typer.Option(
        None, help="val_loss, or forecast: forecast validation series after each run (charged) and rank by MASE."
    ),
    forecast_series: int = typer.Option(None, min=1, help="Validation series forecast per run \\[default: 20]."),
    fit_budget: bool = typer.Option(False, "--fit-budget", help="Run, in order, what fits the budget."),
    allow_over_budget: bool = typer.Option(False, "--allow-over-budget", help="Run even if over budget."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan only."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Configurations run at once, each in its own process."),
    devices: str = typer.Option(
        None, help="GPUs for --jobs, one per job in turn, e.g. 0,1 \\[default: every visible GPU; none on CPU]."
    ),
    print_commands: bool = typer.Option(
        False, "--print-commands", help="Print one lvtime command line per configuration still to run, run nothing."
    ),
    ledger: Path = typer.Option(None, "--ledger", help=LEDGER_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Fine-tune every configuration of a grid, within the budget, and rank the results.

    Flags give a grid over rank, lr and context; --set fixes any finetune option and
    --config sweep.json can sweep or fix any of them. Re-running the same command skips
    finished runs and resumes an interrupted one. Exit 3 when the grid does not fit (see
    --fit-budget). --jobs N runs N configurations at once (one GPU, or an equal share of
    the CPU cores, each); --print-commands prints them for a job array instead, and a
    later lvtime sweep collects the results.

    Example:\n
      lvtime sweep --model smollm2-135m-instruct --ranks 2,4,8 --lrs 1e-5,1e-4 --steps 200 --out runs/sweep-rl
    """
    from lvtime import sweep as sw
    from lvtime.ledger import Ledger

    lg = Ledger(ledger)
    spec = _grid_spec(config, out, ranks, lrs, contexts)
    ranking = {"rank_by": rank_by, "forecast_series": forecast_series}
    spec = build(sw.SweepConfig, **{**spec.model_dump(), **{k: v for k, v in ranking.items() if v is not None}})
    fixed = dict(data=str(data) if data else None, steps=steps, model=model, batch_size=batch_size, head=head)
    fixed.update(dtype=dtype, device=device, eval_every=eval_every, val_series=val_series)
    fixed.update(train_series=train_series, seed=seed)
    spec.base.update({k: v for k, v in fixed.items() if v is not None})
    spec.base.update(_parse_sets(fix or []))
    planned, summary = sw.plan(spec, lg, fit_budget)
    if print_commands:
        _print_commands(spec, planned, lg, allow_over_budget, as_json)
        return
    if as_json and dry_run:
        print_json(_plan_doc(planned, summary))
        return
    if not as_json:
        _print_plan(planned, summary)
    if dry_run:
        return
    sw.check_budget(planned, summary, allow_over_budget)
    show = not quiet and not as_json

    def on_run_start(p) -> None:
        if show:
            err_console.print(f"[bold]{p.name}[/] ({'resuming' if p.state == 'resume' else 'new'})")

    gpus = _devices(devices, spec, jobs)
    rows = sw.run(spec, planned, lg, allow_over_budget, on_run_start if show else None, jobs=jobs, devices=gpus)
    best = sw.finetune_command(_best_config(planned, rows)) if rows else None
    if as_json:
        print_json({"plan": _plan_doc(planned, summary), "results": rows, "best_command": best})
        return
    _print_results(rows, list(spec.grid), spec.out, spec.rank_by)
    if best:
        console.print("best configuration, as a finetune command:")
        console.print(best, soft_wrap=True)


def _grid_spec(config, out, ranks, lrs, contexts):
    """The sweep from --config, or from the --ranks/--lrs/--contexts flags."""
    from lvtime import sweep as sw
    from lvtime.errors import UsageError

    if config:
        if ranks or lrs or contexts:
            raise UsageError("give the grid either in --config or with --ranks/--lrs/--contexts, not both")
        spec = sw.load_sweep_config(config)
        return spec.model_copy(update={"out": str(out)}) if out else spec
    grid = {}
    if ranks:
        grid["rank"] = parse_ints(ranks, "--ranks")
    if lrs:
        grid["lr"] = parse_floats(lrs, "--lrs")
    if contexts:
        grid["context"] = parse_ints(contexts, "--contexts")
    if not grid:
        raise UsageError("nothing to sweep: give --ranks, --lrs, --contexts or --config")
    return sw.SweepConfig(out=str(out or Path("runs") / time.strftime("sweep-%Y%m%d-%H%M%S")), grid=grid)


def _devices(devices: str | None, spec, jobs: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES entries for the jobs: --devices, else every visible GPU."""
    import re

    from lvtime import jobs as jb
    from lvtime.errors import UsageError

    if jobs == 1:
        return []
    if devices:
        return [d.strip() for d in devices.split(",") if d.strip()]
    device = str(spec.base.get("device", "auto"))
    if re.fullmatch(r"cuda:\d+", device) or "device" in spec.grid:
        raise UsageError("with --jobs, --devices chooses each job's GPU; set the device to auto or cuda")
    return [] if device == "cpu" else jb.visible_gpus()


def _print_commands(spec, planned, lg, allow_over_budget: bool, as_json: bool) -> None:
    """One shell line per configuration still to run (finetune, then && its forecast)."""
    import shlex

    from lvtime import sweep as sw

    todo = [p for p in planned if p.state != "done" and p.planned]
    chains = {p.name: sw.job_commands(spec, p, lg, allow_over_budget) for p in todo}
    sw.open_folder(spec)  # the commands write into it; a later `lvtime sweep` collects it
    if as_json:
        print_json([{"run": name, "commands": [["lvtime", *c] for c in cs]} for name, cs in chains.items()])
        return
    for commands in chains.values():
        print(" && ".join(shlex.join(["lvtime", *c]) for c in commands))


def _parse_sets(items: list[str]) -> dict:
    """``["context=256", "head=numeric"]`` -> ``{"context": 256, "head": "numeric"}``."""
    import json

    from lvtime.config import FinetuneConfig
    from lvtime.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in FinetuneConfig.model_fields:
            raise UsageError(f"--set {item!r}: expected OPTION=VALUE with a finetune option (e.g. context=256)")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a bare string such as numeric or bfloat16
    return out


def _best_config(planned, rows):
    return next(p.config for p in planned if p.name == rows[0]["run"])


def _plan_doc(planned, summary) -> dict:
    return {
        "runs": [
            {"run": p.name, **p.values, "state": p.state, "cost": p.cost, "planned": p.planned, "out": p.config.out}
            for p in planned
        ],
        **summary,
    }


def _print_plan(planned, summary) -> None:
    from rich.table import Table

    budget = summary["budget"]
    table = Table("run", "state", "FLOPs", "% budget", "cumulative", title="sweep plan")
    cum = 0.0
    for p in planned:
        if p.planned:
            cum += p.cost
        state = p.state if p.planned else "[yellow]skipped (does not fit)[/]"
        table.add_row(p.name, state, flops_str(p.cost), pct(p.cost, budget), flops_str(cum))
    console.print(table)
    line = (
        f"sweep total {flops_str(summary['sweep_total'])} ({pct(summary['sweep_total'], budget)}); "
        f"remaining now {flops_str(summary['remaining'])}, after {flops_str(summary['remaining_after'])}"
    )
    console.print(("[red]" if summary["remaining_after"] < 0 else "") + line)


def _print_results(rows, keys, out, rank_by: str) -> None:
    from rich.table import Table

    forecast = rank_by == "forecast"
    extra = ["forecast MASE", "best ref", "ODE limit"] if forecast else []
    table = Table(
        "run",
        *keys,
        "val loss @0",
        "val loss",
        *extra,
        "steps",
        "FLOPs",
        "% budget",
        "wall",
        title=f"results (best first, by {'forecast MASE' if forecast else 'validation loss'}); files in {out}",
    )

    def num(x) -> str:
        return "-" if x is None else f"{x:.3g}"

    for r in rows:
        scores = [num(r.get("forecast_mase")), num(r.get("best_reference_mase")), num(r.get("ode_limit_mase"))]
        table.add_row(
            r["run"],
            *(str(r[k]) for k in keys),
            f"{r['val_loss_0']:.4f}",
            f"{r['val_loss']:.4f}",
            *(scores if forecast else []),
            str(r["steps"]),
            flops_str(r["flops"]),
            f"{r['percent_budget']:.3g}%",
            f"{r['wall_s']:.0f}s",
        )
    console.print(table)
