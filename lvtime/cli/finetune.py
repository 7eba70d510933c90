"""``lvtime finetune``: budget-aware LoRA fine-tuning from the shell."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from lvtime import shell
from lvtime.cli import options
from lvtime.cli.output import console, err_console, flops_str, pct, print_json, styled
from lvtime.config import FinetuneConfig, FinetuneFlags


def register(app: typer.Typer) -> None:
    app.command("finetune", cls=options.Command)(options.command(FinetuneConfig, FinetuneFlags)(finetune))


def finetune(given: options.Given) -> None:
    """Fine-tune LoRA adapters on the training split, within the FLOP budget.

    Writes runs/NAME/: config.json, metrics.jsonl, checkpoints/step-N/, final/ (a PEFT
    adapter), summary.json and loss.png. Ctrl-C saves a checkpoint; continue with
    --resume runs/NAME. Exit codes: 0 done, 1 failed, 2 usage, 3 over budget, 130 stopped.

    Example:\n
      lvtime finetune --model smollm2-135m-instruct --steps 200 --rank 8 --lr 1e-4 --context 256 --out runs/r8
    """
    from lvtime.finetune_run import finetune as run_finetune
    from lvtime.ledger import Ledger

    flags = given.build(FinetuneFlags)
    lg = Ledger(flags.ledger)
    cfg = _config(given, flags.resume)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    show = main_rank and not flags.quiet and not flags.as_json
    if flags.dry_run:
        _dry_run(cfg, flags, lg)
        return
    progress, on_progress = _progress(cfg, lg.budget(), show)

    def on_plan(p) -> None:
        for note in p.notes:  # e.g. a corrupt newest checkpoint: say which one is used instead
            shell.say(f"warning: {note}")
        if show:
            _print_plan(p, brief=True)
            progress.start()  # only once the plan stands: errors before it print alone

    try:
        summary = run_finetune(
            cfg, resume=flags.resume is not None, force=flags.force, allow_over_budget=flags.allow_over_budget,
            ledger=lg, on_plan=on_plan, on_progress=on_progress, label=flags.label,
        )  # fmt: skip
    finally:
        if progress and progress.live.is_started:
            progress.stop()
    if main_rank and flags.as_json:
        print_json({**summary.model_dump(mode="json"), "already_complete": summary.already_complete})
    elif main_rank:
        _print_summary(summary, cfg, lg.budget())


def _dry_run(cfg, flags: FinetuneFlags, lg) -> None:
    """The plan and its cost, refused where the run would be; nothing written or spent."""
    from lvtime.finetune_run import check_run_dir, plan

    check_run_dir(cfg.out, flags.resume is not None, flags.force, lg)
    the_plan, _ = plan(cfg, lg, resume=flags.resume is not None)
    print_json(the_plan.as_dict()) if flags.as_json else _print_plan(the_plan)


def _config(given: options.Given, resume: str | None):
    """The run's config: the folder's own when resuming (``--steps`` may extend it), else
    the options given."""
    from lvtime import layout
    from lvtime.errors import UsageError

    if resume is None:
        return given.build(FinetuneConfig)
    cfg = layout.read_config(Path(resume))
    typed = given.of(FinetuneConfig)
    if "out" in typed and os.path.realpath(typed["out"]) != os.path.realpath(resume):
        raise UsageError(f"--resume {resume} continues that folder; drop --out {typed['out']}")
    asked = options.build(FinetuneConfig, **{**cfg.model_dump(), **typed, "out": resume})
    # the run's original command with --resume added is fine: values equal to the recorded ones
    for name in sorted(set(typed) - {"steps", "out"}):
        before, now = getattr(cfg, name), getattr(asked, name)
        if before != now and not (name == "data" and os.path.realpath(before) == os.path.realpath(now)):
            flag = options.flags(name, FinetuneConfig.model_fields[name])[0]
            raise UsageError(
                f"--resume continues {resume} as configured: its {flag} is {_shown(before)}, "
                f"not {_shown(now)} (only --steps may change)"
            )
    return asked


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _print_summary(summary, cfg, budget: float) -> None:
    if summary.already_complete:
        console.print(f"{cfg.out}: already complete ({summary.steps} steps); nothing to do")
        return
    vocab = " (numeric vocabulary)" if cfg.head == "numeric" else ""
    before, after, spent = summary.val_loss_before, summary.val_loss_after, summary.flops_this_invocation
    console.print(styled(
        ("done", "bold"),
        f": {summary.steps} step{'s' * (summary.steps != 1)}, val loss{vocab} "
        f"{_fmt(before)} -> {_fmt(after)}, {flops_str(spent)} FLOPs ({pct(spent, budget)} of budget), "
        f"{summary.wall_s:.0f}s",
    ))  # fmt: skip
    console.print(
        f"trained {summary.trainable_params:,} LoRA parameters ({summary.trainable_percent:.3g}% of the model); "
        f"adapter: {Path(cfg.out) / 'final'}"
    )
    if summary.best_step is not None:
        early = " (stopped early: no better score in the last evaluations)" if summary.stopped_early else ""
        console.print(
            f"best forecast score (median MASE, mean of species) {summary.best_score:.3g} at step "
            f"{summary.best_step}, {flops_str(summary.best_flops)} FLOPs; adapter: {Path(cfg.out) / 'best'}{early}"
        )


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def _print_plan(p, brief: bool = False) -> None:
    from rich.table import Table

    cfg, est, budget = p.config, p.estimate, p.budget
    if not brief:
        table = Table("setting", "value", title="finetune plan (dry run: nothing loaded)")
        for k, v in cfg.model_dump(mode="json").items():
            table.add_row(k, str(v))
        console.print(table)
    d = p.data
    console.print(
        f"data: {d['train_windows']} training windows ({d['train_tokens']} tokens), "
        f"{d['val_windows']} validation windows ({d['val_tokens']} tokens) of {cfg.context}"
    )
    start = f" from step {p.resume_step}" if p.resume_step else ""
    forecasts = (
        f" + {flops_str(est['forecast'])} for {est['forecast_passes']} forecasts" if est["forecast_passes"] else ""
    )
    console.print(styled(
        f"cost{start}: {flops_str(est['train'])} training + {flops_str(est['eval'])} for "
        f"{est['eval_passes']} validation passes{forecasts} = ",
        (flops_str(est["total"]), "bold"),
        f" FLOPs ({pct(est['total'], budget['budget'])} of budget); "
        f"remaining after: {flops_str(budget['remaining'] - est['total'])}",
    ))  # fmt: skip


def _progress(cfg, budget: float, show: bool):
    """A rich progress bar and the callback that feeds it (None, None when hidden)."""
    if not show:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("finetune", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        TimeRemainingColumn(),
        console=err_console.real(),
        transient=False,
    )
    task = bar.add_task("train", total=cfg.steps, info="validating...")
    last_val = {"v": None}

    def update(p) -> None:
        if p.val_loss is not None:
            last_val["v"] = p.val_loss
        val = f" val {last_val['v']:.4f}" if last_val["v"] is not None else ""
        loss = f"loss {p.loss:.4f}" if p.loss == p.loss else "step 0"
        info = (
            f"{loss}{val} lr {p.lr:.1e} {p.tokens_per_s:,.0f} tok/s {flops_str(p.flops)} FLOPs ({pct(p.flops, budget)})"
        )
        bar.update(task, completed=p.step, info=info)

    return bar, update
