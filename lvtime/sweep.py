"""Hyperparameter sweeps: plan a grid against the budget, run it, resume it, rank it.

Every configuration is an ordinary fine-tuning run in its own sub-folder of the sweep
folder, with its own ledger entry. Re-running the same sweep skips finished runs and
resumes interrupted ones, so a sweep can be stopped and started at will.
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lvtime import folders, layout, shell
from lvtime.config import FinetuneConfig, ForecastConfig, SweepConfig, command_args
from lvtime.errors import BudgetError, RunFolderError, UsageError, first_error
from lvtime.ledger import Ledger
from lvtime.shell import command_line

__all__ = ["SweepConfig", "plan", "run", "collect", "finetune_command", "job_commands"]

# Short names for folder names and tables.
SHORT = {
    "rank": "r",
    "lr": "lr",
    "context": "ctx",
    "batch_size": "bs",
    "lora_alpha": "a",
    "steps": "steps",
    "head": "head",
    "weight_decay": "wd",
    "seed": "seed",
}


def load_sweep_config(path: str | Path) -> SweepConfig:
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{p}: is a folder; --config takes a sweep JSON file")
    try:
        return SweepConfig.model_validate(json.loads(p.read_bytes().decode("utf-8")))
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{p}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{p}: not UTF-8 text, so not a sweep JSON file") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{p}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValidationError as exc:
        raise UsageError(f"{p}: {first_error(exc)}") from None


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_name(values: dict[str, Any]) -> str:
    """The configuration's folder name: readable, full precision (``lr0.010000001``),
    and only safe characters (else a hash of the values is appended)."""
    readable = "-".join(
        f"{SHORT.get(k, k)}{v!r}" if isinstance(v, float) else f"{SHORT.get(k, k)}{v}" for k, v in values.items()
    )
    return folders.safe_name(values, readable or "base")


@dataclass
class PlannedRun:
    name: str
    values: dict[str, Any]  # the swept options
    config: FinetuneConfig
    state: str  # done, resume, new, forecast (trained; its forecast is still to run), busy (another process)
    cost: float  # FLOPs still to spend, training and (rank_by=forecast) forecasting
    planned: bool = True  # False: skipped by --fit-budget
    forecast_cost: float = 0.0  # part of cost


def forecast_settings(sweep: SweepConfig, cfg: FinetuneConfig):
    """The fixed validation forecast that ranks a run: the first ``rank_series`` (default:
    the run's ``forecast_series``) validation series, greedy, the run's ``history`` steps
    (at most half the series) -> the next steps (at most 50)."""
    from lvtime.data import load_dataset

    points = load_dataset(cfg.data).n_points
    history = min(cfg.history, points // 2)
    return ForecastConfig(
        data=cfg.data,
        model=cfg.model,
        adapter=str(layout.final_adapter(cfg.out)),
        split="val",
        limit=sweep.rank_series or cfg.forecast_series,
        history=history,
        horizon=min(50, points - history),
        decimals=cfg.decimals,
        scale=cfg.scale,  # the run's: its cost is planned before its adapter exists
        device=cfg.device,
        dtype=cfg.dtype,
        convention=cfg.convention,
        out=str(layout.forecast_dir(cfg.out)),
        plot_series=0,
    )


def _forecast_cost(sweep: SweepConfig, cfg: FinetuneConfig, ledger: Ledger) -> float:
    from lvtime import forecast_run

    # planned before the adapter exists: the merged adapter costs what the base model costs
    s = forecast_settings(sweep, cfg).model_copy(update={"adapter": None})
    return forecast_run.plan(s, ledger)["estimate"]


def expand(sweep: SweepConfig) -> list[tuple[str, dict[str, Any], FinetuneConfig]]:
    """Every configuration of the grid, in the order given (last key varies fastest)."""
    keys = list(sweep.grid)
    out = []
    seen: dict[str, dict] = {}
    for combo in itertools.product(*(sweep.grid[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        name = run_name(values)
        if name in seen:
            raise UsageError(f"configurations {seen[name]} and {values} would share the folder {name}")
        seen[name] = values
        try:
            cfg = FinetuneConfig(**{**sweep.base, **values, "out": str(Path(sweep.out) / name)})
        except ValidationError as exc:
            raise UsageError(f"configuration {name}: {first_error(exc)}") from None
        out.append((name, values, cfg))
    return out


def plan(sweep: SweepConfig, ledger: Ledger, fit_budget: bool = False) -> tuple[list[PlannedRun], dict]:
    """Cost every configuration; with ``fit_budget`` keep, in order, what fits. A run
    that another process holds (a sweep job still going) is ``busy`` and not planned."""
    folders.check_reusable(folders.check_out(sweep.out, ledger.path, what="sweep folder"), "sweep", "sweep folder")
    planned = [_plan_one(sweep, name, values, cfg, ledger) for name, values, cfg in expand(sweep)]
    totals = ledger.read().totals()
    room = totals["remaining"]
    used = 0.0
    for p in planned:
        if p.state in ("done", "busy"):
            p.planned = p.state == "done"
        elif fit_budget and used + p.cost > room:
            p.planned = False
        else:
            used += p.cost
    total = sum(p.cost for p in planned if p.planned)
    return planned, {**totals, "sweep_total": total, "remaining_after": room - total}


def _plan_one(sweep: SweepConfig, name: str, values: dict, cfg: FinetuneConfig, ledger: Ledger) -> PlannedRun:
    from lvtime import checkpoints, finetune_run

    run_dir = Path(cfg.out)
    if folders.holder(run_dir) or folders.holder(layout.forecast_dir(run_dir)):
        return PlannedRun(name, values, cfg, "busy", 0.0)
    forecast = 0.0
    if sweep.rank_by == "forecast" and not (layout.forecast_dir(run_dir) / layout.FORECAST_METRICS).exists():
        forecast = _forecast_cost(sweep, cfg, ledger)
    if layout.is_finished(run_dir):
        return PlannedRun(name, values, cfg, "forecast" if forecast else "done", forecast, True, forecast)
    resume = bool(checkpoints.steps(run_dir))
    the_plan, _ = finetune_run.plan(cfg, ledger, resume=resume)
    state = "resume" if resume else "new"
    return PlannedRun(name, values, cfg, state, the_plan.estimate["total"] + forecast, True, forecast)


def check_budget(planned: list[PlannedRun], summary: dict, allow_over_budget: bool) -> None:
    """Refuse (exit 3) a sweep that does not fit, or a --fit-budget sweep where nothing does."""
    left = [p for p in planned if p.state not in ("done", "busy")]
    if left and not any(p.planned for p in left):
        raise BudgetError(
            f"none of the {len(left)} configurations still to run fits the remaining "
            f"{max(summary['remaining'], 0):.3e} FLOPs; nothing was run"
        )
    if summary["remaining_after"] < 0 and not allow_over_budget:
        raise BudgetError(
            f"the sweep needs {summary['sweep_total']:.3e} FLOPs but {max(summary['remaining'], 0):.3e} "
            "remain; use --fit-budget to run what fits (in order), or --allow-over-budget"
        )


def open_folder(sweep: SweepConfig) -> Path:
    """Create (and mark) the sweep folder and record the sweep in it, so that a later
    ``lvtime sweep`` recognises the folder as its own (plan checked it was empty or ours)."""
    sweep_dir = Path(sweep.out)
    folders.create(sweep_dir, "sweep")
    layout.write_sweep(sweep_dir, sweep)
    return sweep_dir


def run(
    sweep: SweepConfig,
    planned: list[PlannedRun],
    ledger: Ledger,
    allow_over_budget: bool = False,
    on_run_start=None,
    on_progress=None,
    jobs: int = 1,
    devices: list[str] | None = None,
) -> list[dict]:
    """Run the planned configurations (in order, or ``jobs`` at a time in child
    processes, each on one of ``devices``); returns the ranked results. The sweep folder
    is held meanwhile: a second sweep on it is refused, naming this process."""
    with folders.held(Path(sweep.out)):
        open_folder(sweep)
        todo = [p for p in planned if p.state not in ("done", "busy") and p.planned]
        if jobs > 1:
            _run_jobs(sweep, todo, ledger, allow_over_budget, jobs, devices or [], on_run_start)
        else:
            for p in todo:
                if on_run_start:
                    on_run_start(p)
                _run_one(sweep, p, ledger, allow_over_budget, on_progress)
        return collect(sweep, planned, ledger.budget())


def _run_one(sweep: SweepConfig, p: PlannedRun, ledger: Ledger, allow_over_budget: bool, on_progress) -> None:
    from lvtime import finetune_run

    if p.state != "forecast":
        finetune_run.finetune(
            p.config,
            resume=p.state == "resume",
            force=p.state == "new",  # a "new" run whose folder exists never reached a checkpoint: start over
            ledger=ledger,
            allow_over_budget=allow_over_budget,
            on_progress=on_progress,
            label=f"sweep {Path(sweep.out).name}: {p.name}",
        )
    if sweep.rank_by == "forecast":
        _forecast_run(sweep, p, ledger, allow_over_budget)


def _run_jobs(sweep, todo, ledger, allow_over_budget, n, devices, on_run_start) -> None:
    from lvtime import jobs
    from lvtime.errors import LvtimeError

    by_name = {p.name: p for p in todo}
    work = [
        jobs.Job(p.name, job_commands(sweep, p, ledger, allow_over_budget), layout.log_path(Path(sweep.out), p.name))
        for p in todo
    ]
    jobs.run(work, n, devices, on_start=(lambda job, slot: on_run_start(by_name[job.name])) if on_run_start else None)
    failed = [j for j in work if j.returncode not in (None, 0)]
    if failed:
        raise LvtimeError(
            f"{len(failed)} configuration(s) failed, e.g. {failed[0].name} (exit {failed[0].returncode}; see "
            f"{failed[0].log}); finished runs are kept, re-run the sweep to retry"
        )


def _forecast_run(sweep: SweepConfig, p: PlannedRun, ledger: Ledger, allow_over_budget: bool) -> None:
    from lvtime import forecast_run

    s = forecast_settings(sweep, p.config)
    forecast_run.run(
        # force: an earlier attempt that stopped mid-way left partial results of lvtime's own
        s,
        ledger,
        allow_over_budget,
        kind="forecast",
        label=f"sweep {Path(sweep.out).name}: {p.name} (forecast)",
        force=True,
    )


def collect(sweep: SweepConfig, planned: list[PlannedRun], budget: float) -> list[dict]:
    """Results of the finished runs, best first (lowest final validation loss, or with
    rank_by=forecast lowest forecast MASE); writes results.csv, results.json,
    results.md and figures in the sweep folder. A run whose files are corrupt is left
    out with a warning."""
    rows = []
    for p in planned:
        try:
            row = _result_row(sweep, p, budget)
        except RunFolderError as exc:
            shell.say(f"warning: {exc}; left out of the results")
            continue
        if row is not None:
            rows.append(row)
    key = "forecast_mase" if sweep.rank_by == "forecast" else "val_loss"
    rows.sort(key=lambda r: (r.get(key) is None, r.get(key)))
    write_results(Path(sweep.out), rows, list(sweep.grid))
    return rows


def result_row(p: PlannedRun, s: layout.RunSummary, budget: float) -> dict:
    """A finished run's row of the results tables."""
    return {
        "run": p.name,
        **p.values,
        "val_loss_0": s.val_loss_before,
        "val_loss": s.val_loss_after,
        "steps": s.steps,
        "flops": s.flops_total,
        "percent_budget": 100 * s.flops_total / budget,
        "wall_s": s.wall_s,
        "out": p.config.out,
    }


def _result_row(sweep: SweepConfig, p: PlannedRun, budget: float) -> dict | None:
    s = layout.read_summary(Path(p.config.out))
    if s is None:
        return None
    row = result_row(p, s, budget)
    doc = layout.read_forecast_metrics(layout.forecast_dir(p.config.out)) if sweep.rank_by == "forecast" else None
    if doc is not None:
        gap = doc["gap"]
        row.update(
            forecast_mase=gap["model"],
            forecast_r2_prey=doc["metrics"]["model"]["prey"]["r2"]["median"],
            forecast_r2_predator=doc["metrics"]["model"]["predator"]["r2"]["median"],
            best_reference=gap["best_reference"],
            best_reference_mase=gap["best_reference_score"],
            ode_limit_mase=gap["ode_limit"],
        )
    return row


def finetune_command(cfg: FinetuneConfig, out: str = "runs/best") -> str:
    """The ``lvtime finetune`` command line that reproduces ``cfg`` in ``out``."""
    return command_line(["lvtime", "finetune", *command_args(cfg, skip=("out",)), "--out", out])


def job_commands(sweep: SweepConfig, p: PlannedRun, ledger: Ledger, allow_over_budget: bool = False) -> list[list[str]]:
    """The ``lvtime`` commands (without the program name) that do what ``run`` does for
    ``p``: train it (new, started over or resumed) and, with rank_by=forecast, forecast
    its validation series. Same labels and ledger as a sequential sweep."""
    label = f"sweep {Path(sweep.out).name}: {p.name}"
    common = ["--ledger", str(ledger.path)] + (["--allow-over-budget"] if allow_over_budget else [])
    commands = []
    if p.state == "resume":
        commands.append(["finetune", "--resume", p.config.out, "--steps", str(p.config.steps), "--label", label])
    elif p.state == "new":
        force = ["--force"] if Path(p.config.out).exists() else []  # never reached a checkpoint: start over
        commands.append(["finetune", *command_args(p.config, skip=("out",)), "--out", p.config.out, *force])
        commands[-1] += ["--label", label]
    if sweep.rank_by == "forecast":
        s = forecast_settings(sweep, p.config)
        commands.append(["forecast", *command_args(s), "--force", "--label", f"{label} (forecast)"])
    return [c + common for c in commands]


def _md_cell(column: str, value) -> str:
    """One results.md cell: '-' where there is no value (a pruned trial's last validation
    loss); a value from the sweep file (a path, a label) kept on its line and in its cell."""
    from lvtime.flops import flops_str

    if value is None:
        return "-"
    if column == "flops":
        return flops_str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return shell.markdown_cell(value)


def write_results(sweep_dir: Path, rows: list[dict], keys: list[str]) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    layout.write_json(layout.results_path(sweep_dir, "json"), rows)
    if rows:
        with open(layout.results_path(sweep_dir, "csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    cols = ["run", *keys, "val_loss_0", "val_loss", "steps", "flops", "percent_budget", "wall_s"]
    if rows and "forecast_mase" in rows[0]:
        cols[-4:-4] = ["forecast_mase", "best_reference_mase", "ode_limit_mase"]
    if any("pruned" in r for r in rows):  # a search's rows
        cols.append("pruned")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_md_cell(c, r.get(c)) for c in cols) + " |")
    layout.results_path(sweep_dir, "md").write_text("\n".join(lines) + "\n")
    from lvtime import plots

    plots.sweep_figures(sweep_dir, rows, keys)
