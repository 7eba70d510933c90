"""A fine-tuning run from start to finish: folder, plan, budget, training, summary.

This is what ``lvtime finetune`` and every configuration of ``lvtime sweep`` call.
The ledger is told the estimate before any weight is loaded and what was really spent
at the end, whether the run completed, failed or was interrupted.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

from lvtime import folders, layout
from lvtime.config import FinetuneConfig
from lvtime.errors import LvtimeError, ModelError, UsageError
from lvtime.flops import Architecture
from lvtime.layout import RunSummary
from lvtime.ledger import Ledger
from lvtime.shell import command_line


@dataclass
class Plan:
    """What a run will do and cost, known before loading weights."""

    config: FinetuneConfig
    architecture: Architecture
    data: dict  # windows and tokens per split
    estimate: dict  # train / eval / total FLOPs of what is left to run
    resume_step: int | None
    budget: dict  # ledger totals now
    notes: list[str]  # e.g. newer checkpoints that did not load and were passed over

    def as_dict(self) -> dict:
        remaining_after = self.budget["remaining"] - self.estimate["total"]
        return {
            "config": self.config.model_dump(mode="json"),
            "architecture": asdict(self.architecture),
            "data": self.data,
            "estimate": self.estimate,
            "resume_step": self.resume_step,
            "budget": {**self.budget, "remaining_after": remaining_after},
            "notes": self.notes,
        }


def plan(cfg: FinetuneConfig, ledger: Ledger, resume: bool = False):
    """Resolve data windows and the cost of the run (tokenizer only, no weights)."""
    from lvtime import forecast_eval
    from lvtime.data import load_dataset
    from lvtime.models import architecture_for, tokenizer_for
    from lvtime.training import run_estimate
    from lvtime.windows import prepare_data

    run_dir = Path(cfg.out)
    resume_step, notes = None, []
    if resume:
        from lvtime import checkpoints

        found = checkpoints.newest_good(run_dir)
        if found.skipped and found.step is None:
            raise ModelError(f"{run_dir}: no checkpoint loads ({found.skipped[0]}); start over with --force")
        resume_step = found.step
        notes = [f"passed over a checkpoint that does not load: {why}" for why in found.skipped]
        mismatch = checkpoints.config_mismatch(run_dir, resume_step, cfg) if resume_step is not None else None
        if mismatch:  # a hand-edited config.json would train on against state made otherwise
            raise UsageError(f"{run_dir}: {mismatch}; restore its config.json, or start over with --force")
        if resume_step is not None and cfg.steps < resume_step:
            raise UsageError(f"--steps {cfg.steps}: {run_dir} is already at step {resume_step}; give --steps >= that")
    if cfg.compile:  # a dry run refuses it too; every rank alike, before anything is charged
        from lvtime.models import pick_device
        from lvtime.training import check_compile

        check_compile(pick_device(cfg.device))
    arch = architecture_for(cfg.model)
    if arch.max_positions and cfg.context > arch.max_positions:  # checked before any window is allocated
        raise UsageError(f"--context {cfg.context}: {arch.name} takes at most {arch.max_positions} tokens")
    tokenizer = tokenizer_for(cfg.model)
    dataset = load_dataset(cfg.data)
    data = prepare_data(cfg, dataset, tokenizer)
    data.forecast = forecast_eval.select(cfg, dataset, tokenizer)
    if data.forecast:  # the in-training forecasts' prompts and answers must fit the model too
        from lvtime.generation import check_fits

        fs = data.forecast
        check_fits(arch, fs.history, fs.horizon, cfg.decimals, 2, fs.prompt_lens)
    estimate = run_estimate(cfg, arch, data, resume_step)
    return Plan(cfg, arch, data.describe(), estimate, resume_step, ledger.read().totals(), notes), data


def check_run_dir(out: str | Path, resume: bool, force: bool, ledger: Ledger, inputs=()) -> Path:
    """Never overwrite a run silently: an existing run needs --resume or --force, and
    --force replaces only a folder lvtime made (see :mod:`lvtime.folders`). Returns the folder."""
    run_dir = folders.check_out(out, ledger.path)  # the text as typed: '' is no folder, not '.'
    if resume or folders.is_empty(run_dir):
        return run_dir
    if not force:
        resume = command_line(["--resume", str(run_dir)])
        raise UsageError(f"{run_dir}: already exists; use {resume} to continue it or --force to start over")
    folders.check_replaceable(run_dir, "finetune", inputs)
    return run_dir


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
) -> RunSummary:
    """Check the folder, hold it, plan, reserve, train, record. Returns the summary
    written to ``summary.json`` (an empty one on ranks other than 0)."""
    ledger = ledger or Ledger()
    run_dir = check_run_dir(cfg.out, resume, force, ledger, _inputs(cfg))  # before any work: nothing spent
    main = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 holds the folder for all
    with folders.held(run_dir) if main else contextlib.nullcontext():
        the_plan, data = plan(cfg, ledger, resume)
        done = layout.read_summary(run_dir) if resume and the_plan.resume_step is not None else None
        if done is not None and (the_plan.resume_step >= cfg.steps or done.stopped_early):
            return done.model_copy(update={"already_complete": True})  # an early stop is an end too
        if on_plan:
            on_plan(the_plan)
        return _train(cfg, the_plan, data, ledger, allow_over_budget, on_progress, label)


def _train(cfg, the_plan: Plan, data, ledger: Ledger, allow_over_budget: bool, on_progress, label) -> RunSummary:
    """Reserve (before loading weights: a refused run costs no loading time), train, settle."""
    from lvtime.distributed import init_distributed
    from lvtime.models import load_model, pick_device
    from lvtime.training import Result, train

    run_dir = Path(cfg.out)
    dist = init_distributed(pick_device(cfg.device))
    result = Result(out=run_dir, steps_done=0)
    refused: LvtimeError | None = None
    with contextlib.ExitStack() as stack:
        stack.callback(dist.close)  # last, after the ledger is settled
        reservation = SimpleNamespace(spent=0.0, id=None)  # ranks > 0 do not write the ledger
        if dist.main:
            try:
                what = f" (resumed at step {the_plan.resume_step})" if the_plan.resume_step else ""
                reservation = stack.enter_context(
                    ledger.reservation(
                        label or f"finetune {run_dir.name}{what}",
                        the_plan.estimate["total"],
                        kind="finetune",
                        config={**cfg.model_dump(mode="json"), "steps": cfg.steps},
                        outputs=[str(run_dir)],
                        allow_over_budget=allow_over_budget,
                    )
                )
                _prepare_run_dir(run_dir, cfg, the_plan)
            except LvtimeError as exc:
                refused = exc
        if dist.any(refused is not None):  # every process stops if rank 0 was refused
            raise refused or LvtimeError("rank 0 refused the run")
        try:
            loaded = load_model(cfg.model, dist.device or cfg.device, cfg.dtype)
            train(cfg, loaded, data, run_dir, dist, the_plan.resume_step, on_progress, result)
        finally:
            # work cut short mid-step or mid-validation is charged in full: never under-count
            reservation.spent = result.flops + result.in_flight
        if not dist.main:
            return RunSummary(run=str(run_dir), model=cfg.model, steps=result.steps_done)
        return _write_summary(cfg, result, the_plan, reservation.id, ledger)


def _inputs(cfg: FinetuneConfig) -> tuple[str, ...]:
    """What a run reads, which ``--force`` must never delete: its data and model."""
    return (cfg.data, cfg.model)


def _prepare_run_dir(run_dir: Path, cfg: FinetuneConfig, the_plan: Plan) -> None:
    """A new run gets a fresh marked folder with its config; a resumed one is kept."""
    if the_plan.resume_step is None:
        folders.replace(run_dir, "finetune", _inputs(cfg))  # check_run_dir allowed it (empty, or --force on a run)
        layout.write_config(run_dir, cfg, {"data": the_plan.data, "estimate": the_plan.estimate})
    else:
        folders.create(run_dir, "finetune")


def _write_summary(cfg: FinetuneConfig, result, the_plan: Plan, entry_id: str | None, ledger: Ledger) -> RunSummary:
    from lvtime.plots import loss_curve

    history = result.val_losses
    summary = RunSummary(
        run=str(result.out),
        model=cfg.model,
        steps=result.steps_done,
        val_loss_before=history.get(0),
        val_loss_after=history.get(result.steps_done),
        val_losses=history,
        val_loss_vocabulary="numeric (LLMTIME tokens + end-of-text)" if cfg.head == "numeric" else "full",
        trainable_params=result.trainable.get("trainable"),
        trainable_percent=result.trainable.get("percent"),
        tokens=result.tokens,
        flops_total=result.run_flops,
        flops_this_invocation=result.flops,
        budget_fraction_this_invocation=result.flops / ledger.budget(),
        wall_s=result.wall_s,
        forecast_scores=result.forecast_scores,
        best_step=(result.best or {}).get("step"),
        best_score=(result.best or {}).get("score"),
        best_flops=(result.best or {}).get("flops"),
        stopped_early=result.stopped_early,
        pruned=result.pruned,
        ledger_entry=entry_id,
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        **the_plan.data,
    )
    layout.write_summary(result.out, summary)
    loss_curve(result.out)
    return summary
