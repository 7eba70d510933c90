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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lvtime import folders
from lvtime.config import FinetuneConfig
from lvtime.errors import BudgetError, UsageError
from lvtime.ledger import Ledger

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


class SweepConfig(BaseModel):
    """A sweep: fixed finetune options (``base``) and the options to vary (``grid``)."""

    model_config = ConfigDict(extra="forbid")

    out: str = Field("runs/sweep", description="Sweep folder; one sub-folder per configuration.")
    base: dict[str, Any] = Field(default_factory=dict, description="Finetune options kept fixed.")
    grid: dict[str, list[Any]] = Field(..., description="Finetune option -> values to try, in order.")

    @field_validator("base")
    @classmethod
    def _base(cls, base: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(base) - set(FinetuneConfig.model_fields))
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a finetune option")
        if "out" in base:
            raise ValueError("'out' is the sweep's own folder; set it at the top level")
        return base

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        known = set(FinetuneConfig.model_fields)
        for key, values in grid.items():
            if key not in known:
                raise ValueError(f"{key!r} is not a finetune option")
            if key == "out":
                raise ValueError("'out' cannot be swept: each configuration gets its own folder")
            if not values:
                raise ValueError(f"{key!r} has no values")
        return grid


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
        e = exc.errors()[0]
        raise UsageError(f"{p}: {'.'.join(map(str, e['loc']))}: {e['msg']}") from None


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
    state: str  # done, resume, new
    cost: float  # FLOPs still to spend
    planned: bool = True  # False: skipped by --fit-budget


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
            e = exc.errors()[0]
            raise UsageError(f"configuration {name}: {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
        out.append((name, values, cfg))
    return out


def plan(sweep: SweepConfig, ledger: Ledger, fit_budget: bool = False) -> tuple[list[PlannedRun], dict]:
    """Cost every configuration; with ``fit_budget`` keep, in order, what fits."""
    from lvtime import checkpoints, runs

    folders.check_out(sweep.out, ledger.path, what="sweep folder")
    planned: list[PlannedRun] = []
    for name, values, cfg in expand(sweep):
        run_dir = Path(cfg.out)
        if (run_dir / "summary.json").exists() and (run_dir / "final").exists():
            planned.append(PlannedRun(name, values, cfg, "done", 0.0))
            continue
        resume = bool(checkpoints.steps(run_dir))
        the_plan, _ = runs.plan(cfg, ledger, resume=resume)
        planned.append(PlannedRun(name, values, cfg, "resume" if resume else "new", the_plan.estimate["total"]))
    totals = ledger.read().totals()
    room = totals["remaining"]
    if fit_budget:
        used = 0.0
        for p in planned:
            if p.state == "done":
                continue
            if used + p.cost <= room:
                used += p.cost
            else:
                p.planned = False
    total = sum(p.cost for p in planned if p.planned)
    return planned, {**totals, "sweep_total": total, "remaining_after": room - total}


def check_budget(planned: list[PlannedRun], summary: dict, allow_over_budget: bool) -> None:
    """Refuse (exit 3) a sweep that does not fit, or a --fit-budget sweep where nothing does."""
    left = [p for p in planned if p.state != "done"]
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


def run(
    sweep: SweepConfig,
    planned: list[PlannedRun],
    ledger: Ledger,
    allow_over_budget: bool = False,
    on_run_start=None,
    on_progress=None,
) -> list[dict]:
    """Run the planned configurations in order; returns the ranked results."""
    from lvtime import runs

    sweep_dir = Path(sweep.out)
    folders.create(sweep_dir, "sweep")
    (sweep_dir / "sweep.json").write_text(json.dumps(sweep.model_dump(mode="json"), indent=2) + "\n")
    for p in planned:
        if p.state == "done" or not p.planned:
            continue
        if on_run_start:
            on_run_start(p)
        runs.finetune(
            # a "new" run whose folder exists never reached a checkpoint: start it over
            p.config,
            resume=p.state == "resume",
            force=p.state == "new",
            ledger=ledger,
            allow_over_budget=allow_over_budget,
            on_progress=on_progress,
            label=f"sweep {sweep_dir.name}: {p.name}",
        )
    return collect(sweep, planned, ledger.budget())


def collect(sweep: SweepConfig, planned: list[PlannedRun], budget: float) -> list[dict]:
    """Results of the finished runs, best (lowest final validation loss) first; writes
    results.csv, results.json, results.md and figures in the sweep folder."""
    rows = []
    for p in planned:
        path = Path(p.config.out) / "summary.json"
        if not path.exists():
            continue
        s = json.loads(path.read_text())
        rows.append(
            {
                "run": p.name,
                **p.values,
                "val_loss_0": s["val_loss_before"],
                "val_loss": s["val_loss_after"],
                "steps": s["steps"],
                "flops": s["flops_total"],
                "percent_budget": 100 * s["flops_total"] / budget,
                "wall_s": s["wall_s"],
                "out": p.config.out,
            }
        )
    rows.sort(key=lambda r: (r["val_loss"] is None, r["val_loss"]))
    write_results(Path(sweep.out), rows, list(sweep.grid))
    return rows


# FinetuneConfig fields whose finetune flag is not simply --field-name.
FLAG_NAMES = {"warmup_steps": "--warmup"}
NOT_FLAGS = {"data", "out", "alpha_mode", "targets", "compile"}


def finetune_command(cfg: FinetuneConfig, out: str = "runs/best") -> str:
    """The ``lvtime finetune`` command line that reproduces ``cfg`` exactly (every
    option that differs from its default, floats at full precision)."""
    import shlex

    defaults = FinetuneConfig()
    parts = ["lvtime", "finetune", cfg.data]
    for field in FinetuneConfig.model_fields:
        value = getattr(cfg, field)
        if field in NOT_FLAGS or value == getattr(defaults, field):
            continue
        parts += [
            FLAG_NAMES.get(field, "--" + field.replace("_", "-")),
            repr(value) if isinstance(value, float) else str(value),
        ]
    if cfg.targets != defaults.targets:
        parts += ["--targets", ",".join(cfg.targets)]
    if cfg.alpha_mode == "global":
        parts.append("--global-alpha")
    if cfg.compile:
        parts.append("--compile")
    parts += ["--out", out]
    return " ".join(shlex.quote(p) for p in parts)


def write_results(sweep_dir: Path, rows: list[dict], keys: list[str]) -> None:
    from lvtime.flops import flops_str

    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    if rows:
        with open(sweep_dir / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    cols = ["run", *keys, "val_loss_0", "val_loss", "steps", "flops", "percent_budget", "wall_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if c == "flops":
                cells.append(flops_str(v))
            elif isinstance(v, float):
                cells.append(f"{v:.4g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    (sweep_dir / "results.md").write_text("\n".join(lines) + "\n")
    from lvtime import plots

    plots.sweep_figures(sweep_dir, rows, keys)
