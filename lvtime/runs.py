"""A fine-tuning run from start to finish: folder, plan, budget, training, summary.

This is what ``lvtime finetune`` and every configuration of ``lvtime sweep`` call.
The ledger is told the estimate before any weight is loaded and what was really spent
at the end, whether the run completed, failed or was interrupted.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lvtime import flops as F
from lvtime.config import FinetuneConfig
from lvtime.errors import Interrupted, LvtimeError, UsageError
from lvtime.ledger import Ledger


@dataclass
class Plan:
    """What a run will do and cost, known before loading weights."""

    config: FinetuneConfig
    architecture: F.Architecture
    data: dict  # windows and tokens per split
    estimate: dict  # train / eval / total FLOPs of what is left to run
    resume_step: int | None
    budget: dict  # ledger totals now

    def as_dict(self) -> dict:
        remaining_after = self.budget["remaining"] - self.estimate["total"]
        return {
            "config": self.config.model_dump(mode="json"),
            "architecture": self.architecture.model_dump(),
            "data": self.data,
            "estimate": self.estimate,
            "resume_step": self.resume_step,
            "budget": {**self.budget, "remaining_after": remaining_after},
        }


def load_config(run_dir: Path) -> FinetuneConfig:
    path = run_dir / "config.json"
    if not path.exists():
        raise UsageError(f"{run_dir}: not a run folder (no config.json)")
    return FinetuneConfig.model_validate(json.loads(path.read_text())["config"])


def plan(cfg: FinetuneConfig, ledger: Ledger, resume: bool = False):
    """Resolve data windows and the cost of the run (tokenizer only, no weights)."""
    from lvtime.data import load_dataset
    from lvtime.models import architecture_for, tokenizer_for
    from lvtime.training import eval_flops, prepare_data, run_estimate, step_flops

    run_dir = Path(cfg.out)
    resume_step = None
    if resume:
        from lvtime.training import list_checkpoints

        steps = list_checkpoints(run_dir)
        resume_step = steps[-1] if steps else None
    arch = architecture_for(cfg.model)
    tokenizer = tokenizer_for(cfg.model)
    data = prepare_data(cfg, load_dataset(cfg.data), tokenizer)
    estimate = run_estimate(cfg, arch, len(data.val), resume_step or 0)
    estimate["step_flops"] = step_flops(cfg, arch)
    estimate["eval_pass_flops"] = eval_flops(cfg, arch, len(data.val))
    return Plan(cfg, arch, data.describe(), estimate, resume_step, ledger.read().totals()), data


def check_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    """Never overwrite a run silently: an existing run needs --resume or --force."""
    if resume or not run_dir.exists() or not any(run_dir.iterdir()):
        return
    if not force:
        raise UsageError(f"{run_dir}: already exists; use --resume {run_dir} to continue it or --force to start over")
    if not (run_dir / "config.json").exists():
        raise UsageError(f"{run_dir}: exists and is not a run folder; refusing to delete it")


def make_run_dir(run_dir: Path, resume: bool) -> None:
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)  # check_run_dir allowed it: --force on a run folder
    run_dir.mkdir(parents=True, exist_ok=True)


def finetune(
    cfg: FinetuneConfig,
    *,
    resume: bool = False,
    force: bool = False,
    allow_over_budget: bool = False,
    ledger: Ledger | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    on_progress=None,
    label: str | None = None,
) -> dict:
    """Plan, reserve, train, record. Returns the summary written to ``summary.json``."""
    from lvtime.models import load_model, pick_device
    from lvtime.plots import loss_curve
    from lvtime.training import Result, init_distributed, train, write_run_config

    ledger = ledger or Ledger()
    the_plan, data = plan(cfg, ledger, resume)
    if resume and the_plan.resume_step is not None and the_plan.resume_step >= cfg.steps:
        summary_path = Path(cfg.out) / "summary.json"
        if summary_path.exists():
            return {**json.loads(summary_path.read_text()), "already_complete": True}
    if on_plan:
        on_plan(the_plan)
    # Reserve before loading weights: a run the budget refuses costs no loading time.
    dist = init_distributed(pick_device(cfg.device))
    run_dir = Path(cfg.out)
    entry = None
    refused: LvtimeError | None = None
    if dist.main:
        try:
            check_run_dir(run_dir, resume, force)
            what = f"resumed at step {the_plan.resume_step}" if the_plan.resume_step else None
            entry = ledger.reserve(
                label or f"finetune {run_dir.name}" + (f" ({what})" if what else ""),
                the_plan.estimate["total"],
                kind="finetune",
                config={**cfg.model_dump(mode="json"), "steps": cfg.steps},
                outputs=[str(run_dir)],
                allow_over_budget=allow_over_budget,
            )
            make_run_dir(run_dir, resume)
            if the_plan.resume_step is None:
                write_run_config(run_dir, cfg, {"data": the_plan.data, "estimate": the_plan.estimate})
                # --resume of a run that never reached a checkpoint starts from step 0 afresh
                (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        except LvtimeError as exc:
            refused = exc
    if dist.any(refused is not None):  # every process stops if rank 0 was refused
        raise refused or LvtimeError("rank 0 refused the run")
    result = Result(out=run_dir, steps_done=0)
    status = "failed"
    try:
        loaded = load_model(cfg.model, cfg.device, cfg.dtype)
        train(cfg, loaded, data, run_dir, dist, the_plan.resume_step, on_progress, result)
        status = "completed"
    except (Interrupted, KeyboardInterrupt):
        status = "interrupted"
        raise
    finally:
        if entry is not None:
            # work cut short mid-step or mid-validation is charged in full: never under-count
            ledger.finish(entry.id, result.flops + result.in_flight, status, outputs=[str(run_dir)])
    if not dist.main:
        return {}
    history = result.val_losses
    summary = {
        "run": str(run_dir),
        "model": cfg.model,
        "steps": result.steps_done,
        "val_loss_before": history.get(0),
        "val_loss_after": history.get(result.steps_done),
        "val_losses": history,
        "val_loss_vocabulary": "numeric (LLMTIME tokens + end-of-text)" if cfg.head == "numeric" else "full",
        "trainable_params": result.trainable.get("trainable"),
        "trainable_percent": result.trainable.get("percent"),
        "tokens": result.tokens,
        "flops_total": result.run_flops,
        "flops_this_invocation": result.flops,
        "budget_fraction_this_invocation": result.flops / ledger.budget(),
        "wall_s": result.wall_s,
        "ledger_entry": entry.id if entry else None,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **the_plan.data,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    loss_curve(run_dir)
    return summary
