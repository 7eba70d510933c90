"""``lvtime finetune``: budget-aware LoRA fine-tuning from the shell."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer

from lvtime.cli.output import LEDGER_HELP, build, console, err_console, field_option, flops_str, pct, print_json
from lvtime.data import DEFAULT_DATA_FILE
from lvtime.flops import DEFAULT_TARGETS


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)


def _opt(name: str, *flags: str, **overrides):
    from lvtime.config import FinetuneConfig

    return field_option(FinetuneConfig, name, *flags, **overrides)


def finetune(
    data: Path = typer.Argument(None, help="HDF5 dataset (default: ./lotka_volterra_data.h5)."),
    model: str = _opt("model"),
    out: Path = _opt("out", "--out", "-o", default=None, help="Run folder (default: runs/finetune-TIME)."),
    rank: int = _opt("rank"),
    lora_alpha: float = _opt("lora_alpha"),
    lora_dropout: float = _opt("lora_dropout"),
    targets: str = _opt("targets", default=",".join(DEFAULT_TARGETS)),
    lr: float = _opt("lr"),
    steps: int = _opt("steps", default=None, help="Optimizer steps \\[default: 100]."),
    batch_size: int = _opt("batch_size", "--batch-size", "--batch"),
    grad_accum: int = _opt("grad_accum"),
    context: int = _opt("context"),
    weight_decay: float = _opt("weight_decay"),
    schedule: str = _opt("schedule"),
    warmup_steps: int = _opt("warmup_steps", "--warmup"),
    clip_grad: float = _opt("clip_grad"),
    seed: int = _opt("seed"),
    decimals: int = _opt("decimals"),
    global_alpha: bool = typer.Option(False, "--global-alpha", help="One scale from the training split."),
    alpha_from: str = _opt("alpha_from"),
    history: int = _opt("history"),
    window_starts: str = _opt("window_starts"),
    split_scheme: str = _opt("split_scheme"),
    train_series: int = _opt("train_series"),
    val_series: int = _opt("val_series"),
    eval_every: int = _opt("eval_every"),
    save_every: int = _opt("save_every"),
    keep_checkpoints: int = _opt("keep_checkpoints"),
    head: str = _opt("head"),
    device: str = _opt("device"),
    dtype: str = _opt("dtype"),
    compile: bool = _opt("compile", "--compile"),
    convention: str = _opt("convention"),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder from its newest checkpoint."),
    force: bool = typer.Option(False, "--force", help="Replace an existing run folder."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and cost; load no weights."),
    allow_over_budget: bool = typer.Option(False, "--allow-over-budget", help="Run even if over budget."),
    label: str = typer.Option(None, help="Ledger label (default: the run folder's name)."),
    ledger: Path = typer.Option(None, "--ledger", help=LEDGER_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan / summary as JSON."),
) -> None:
    """Fine-tune LoRA adapters on the training split, within the FLOP budget.

    Writes runs/NAME/: config.json, metrics.jsonl, checkpoints/step-N/, final/ (a PEFT
    adapter), summary.json and loss.png. Ctrl-C saves a checkpoint; continue with
    --resume runs/NAME. Exit codes: 0 done, 1 failed, 2 usage, 3 over budget, 130 stopped.

    Example:\n
      lvtime finetune --model smollm2-135m-instruct --steps 200 --rank 8 --lr 1e-4 --context 256 --out runs/r8
    """
    from lvtime.config import FinetuneConfig
    from lvtime.ledger import Ledger
    from lvtime.runs import finetune as run_finetune
    from lvtime.runs import plan

    options = {k: v for k, v in locals().items() if k in FinetuneConfig.model_fields}
    lg = Ledger(ledger)
    cfg = _config(options, resume, out, steps, global_alpha)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    show = main_rank and not quiet and not as_json

    if dry_run:
        the_plan, _ = plan(cfg, lg, resume=resume is not None)
        if as_json:
            print_json(the_plan.as_dict())
        else:
            _print_plan(the_plan)
        return

    progress, on_progress = _progress(cfg, lg.budget(), show)

    def on_plan(p) -> None:
        for note in p.notes:  # e.g. a corrupt newest checkpoint: say which one is used instead
            print(f"lvtime: warning: {note}", file=sys.stderr)
        if show:
            _print_plan(p, brief=True)
            progress.start()  # only once the plan stands: errors before it print alone

    try:
        summary = run_finetune(
            cfg,
            resume=resume is not None,
            force=force,
            allow_over_budget=allow_over_budget,
            ledger=lg,
            on_plan=on_plan,
            on_progress=on_progress,
            label=label,
        )
    finally:
        if progress and progress.live.is_started:
            progress.stop()
    if main_rank and as_json:
        print_json(summary)
    elif main_rank:
        _print_summary(summary, cfg, lg.budget())


def _config(options: dict, resume: Path | None, out: Path | None, steps: int | None, global_alpha: bool):
    """The run's config: the folder's own when resuming (``--steps`` may extend it), else
    the options (their fields by name, a few translated)."""
    from lvtime.config import FinetuneConfig
    from lvtime.runs import load_config

    if resume is not None:
        cfg = load_config(resume)
        if steps is not None:
            cfg = cfg.model_copy(update={"steps": steps})
        return cfg.model_copy(update={"out": str(resume)})
    options.update(
        data=str(options["data"] or DEFAULT_DATA_FILE),
        out=str(out or Path("runs") / time.strftime("finetune-%Y%m%d-%H%M%S")),
        targets=[t for t in options["targets"].split(",") if t],
        steps=100 if steps is None else steps,
        alpha_mode="global" if global_alpha else "per-series",
    )
    return build(FinetuneConfig, **options)


def _print_summary(summary: dict, cfg, budget: float) -> None:
    if summary.get("already_complete"):
        console.print(f"{cfg.out}: already complete ({summary['steps']} steps); nothing to do")
        return
    vocab = " (numeric vocabulary)" if cfg.head == "numeric" else ""
    before, after = summary["val_loss_before"], summary["val_loss_after"]
    console.print(
        f"[bold]done[/]: {summary['steps']} step{'s' * (summary['steps'] != 1)}, val loss{vocab} "
        f"{_fmt(before)} -> {_fmt(after)}, {flops_str(summary['flops_this_invocation'])} FLOPs "
        f"({pct(summary['flops_this_invocation'], budget)} of budget), "
        f"{summary['wall_s']:.0f}s\ntrained {summary['trainable_params']:,} LoRA parameters "
        f"({summary['trainable_percent']:.3g}% of the model); adapter: {Path(cfg.out) / 'final'}"
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
    console.print(
        f"cost{start}: {flops_str(est['train'])} training + {flops_str(est['eval'])} for "
        f"{est['eval_passes']} validation passes = [bold]{flops_str(est['total'])}[/] FLOPs "
        f"({pct(est['total'], budget['budget'])} of budget); "
        f"remaining after: {flops_str(budget['remaining'] - est['total'])}"
    )


def _progress(cfg, budget: float, show: bool):
    """A rich progress bar and the callback that feeds it (None, None when hidden)."""
    if not show:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]finetune"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=err_console,
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
