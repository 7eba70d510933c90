"""``lvtime flops`` (what will it cost?) and ``lvtime ledger`` (what has been spent?)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import typer

from lvtime.cli.output import LEDGER_HELP, console, flops_str, parse_ints, pct, print_json
from lvtime.errors import UsageError
from lvtime.flops import DEFAULT_TARGETS

ledger_app = typer.Typer(
    help="Show the FLOP budget ledger (entries, spent, reserved, remaining); subcommands manage it.",
    no_args_is_help=False,
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    app.command("flops")(flops)
    app.add_typer(ledger_app, name="ledger")


def current_budget(ledger_path: Path | None) -> float:
    from lvtime.ledger import Ledger

    return Ledger(ledger_path).budget()


def flops(
    seq: int = typer.Option(512, "--seq", min=1, help="Tokens per sequence (prompt length in generate mode)."),
    batch: int = typer.Option(4, "--batch", min=1, help="Sequences per pass / optimizer step."),
    steps: int = typer.Option(1, "--steps", min=0, help="Optimizer steps (train) or passes (forward)."),
    rank: int = typer.Option(4, "--rank", min=0, help="LoRA rank (0: no LoRA)."),
    targets: str = typer.Option(",".join(DEFAULT_TARGETS), help="LoRA target modules, comma-separated."),
    mode: str = typer.Option("train", help="forward, train or generate."),
    new_tokens: int = typer.Option(0, "--new-tokens", min=0, help="Tokens to generate (generate mode)."),
    convention: str = typer.Option("coursework", help="coursework, exact or 2mnk (docs/flops.md)."),
    model: str = typer.Option("qwen2.5-0.5b-instruct", help="Preset name, config.json or model folder."),
    head: str = typer.Option("full", help="Output head: full vocabulary or numeric (LLMTIME tokens only)."),
    breakdown: bool = typer.Option(True, "--breakdown/--no-breakdown", help="Per-component table."),
    ledger: Path = typer.Option(None, "--ledger", help=LEDGER_HELP),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Estimate the FLOPs of a forward pass, a training run or a generation.

    Examples:\n
      lvtime flops --seq 768\n
      lvtime flops --seq 512 --batch 4 --steps 600 --rank 8\n
      lvtime flops --mode generate --seq 550 --new-tokens 550 --batch 100
    """
    from lvtime.flops import TRAIN_MULTIPLIER, LoraSpec, forward_flops, generate_flops, resolve_architecture
    from lvtime.flops import total as sum_flops
    from lvtime.llmtime import head_vocab

    if mode not in ("forward", "train", "generate"):
        raise UsageError(f"--mode must be forward, train or generate, not {mode!r}")
    arch = resolve_architecture(model)
    hv = head_vocab(head)
    lora = None
    if rank > 0 and mode != "generate":  # generation runs on a merged adapter
        lora = LoraSpec(rank=rank, targets=[t for t in targets.split(",") if t])
    kw = dict(lora=lora, convention=convention, head_vocab=hv)
    if mode == "generate":
        if new_tokens < 1:
            raise UsageError("--mode generate needs --new-tokens >= 1")
        components = forward_flops(arch, seq, batch, head_positions=1, **kw)
        gen = generate_flops(arch, seq, new_tokens, batch, convention=convention, head_vocab=hv)
        run = gen["total"]
    else:
        components = forward_flops(arch, seq, batch, **kw)
        gen = None
    fwd = sum_flops(components)
    step = TRAIN_MULTIPLIER * fwd
    if mode == "train":
        run = steps * step
    elif mode == "forward":
        run = steps * fwd
    budget = current_budget(ledger)
    result = {
        "model": arch.name,
        "convention": convention,
        "mode": mode,
        "seq": seq,
        "batch": batch,
        "steps": steps,
        "lora": lora.model_dump() if lora else None,
        "head_vocab": hv or arch.vocab_size,
        "components": components,
        "forward": fwd,
        "train_step": step,
        "run": run,
        "budget": budget,
        "budget_fraction": run / budget,
    }
    if gen:
        result.update(new_tokens=new_tokens, prefill=gen["prefill"], decode=gen["decode"])
    if as_json:
        print_json(result)
        return
    if breakdown:
        _print_breakdown(result)
    _print_cost(result)


def _print_breakdown(r: dict) -> None:
    from rich.table import Table

    title = f"{r['model']}, {r['convention']}: one forward pass, batch {r['batch']} x {r['seq']} tokens"
    table = Table("component", "FLOPs", "% of forward", title=title)
    for name, value in r["components"].items():
        if value:
            table.add_row(name, flops_str(value), pct(value, r["forward"]))
    table.add_section()
    table.add_row("[bold]forward pass[/]", f"[bold]{flops_str(r['forward'])}[/]", "100%")
    console.print(table)


def _print_cost(r: dict) -> None:
    from rich.table import Table

    budget, run, steps = r["budget"], r["run"], r["steps"]
    summary = Table("", "FLOPs", "% of budget", title=f"budget {flops_str(budget)}", show_header=True)
    summary.add_row("forward pass", flops_str(r["forward"]), pct(r["forward"], budget))
    if r["mode"] == "train":
        summary.add_row("training step (3 x forward)", flops_str(r["train_step"]), pct(r["train_step"], budget))
        summary.add_row(f"run ({steps} step{'s' * (steps != 1)})", flops_str(run), pct(run, budget))
    elif r["mode"] == "forward":
        summary.add_row(f"run ({steps} pass{'es' * (steps != 1)})", flops_str(run), pct(run, budget))
    else:
        summary.add_row("prefill", flops_str(r["prefill"]), pct(r["prefill"], budget))
        decode = f"decode ({r['new_tokens'] - 1} cached steps)"
        summary.add_row(decode, flops_str(r["decode"]), pct(r["decode"], budget))
        summary.add_row("generation", flops_str(run), pct(run, budget))
    console.print(summary)


# --- ledger ----------------------------------------------------------------------------


@ledger_app.callback()
def ledger_show(
    ctx: typer.Context,
    ledger: Path = typer.Option(None, "--ledger", help=LEDGER_HELP),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Show entries and totals (spent, reserved, remaining). Stale = its process died."""
    if ctx.invoked_subcommand is not None:
        return
    from lvtime.ledger import Ledger

    lg = Ledger(ledger)
    data = lg.read()
    totals = data.totals()
    if as_json:
        entries = [{**e.model_dump(mode="json"), "stale": e.is_stale()} for e in data.entries]
        print_json({"path": str(lg.path), "exists": lg.exists(), **totals, "entries": entries})
        return
    from rich.table import Table

    table = Table("id", "label", "kind", "status", "estimate", "spent", "% budget", title=str(lg.path))
    for e in data.entries:
        status = "[red]stale[/]" if e.is_stale() else e.status
        spent = flops_str(e.spent_flops) if e.spent_flops is not None else "-"
        table.add_row(e.id, e.label, e.kind, status, flops_str(e.estimated_flops), spent, pct(e.counted, data.budget))
    console.print(table)
    console.print(
        f"budget {flops_str(totals['budget'])}  spent {flops_str(totals['spent'])}  "
        f"reserved {flops_str(totals['reserved'])}  remaining {flops_str(totals['remaining'])}  "
        f"({100 * totals['used_fraction']:.3g}% used)"
    )
    if not lg.exists():
        console.print("[dim](no ledger file yet: the first run or `lvtime ledger init` creates it)[/]")


@ledger_app.command("init")
def ledger_init(
    budget: float = typer.Option(1e17, help="Total FLOP budget."),
    force: bool = typer.Option(False, "--force", help="Change the budget of a ledger with entries."),
    ledger: Path = typer.Option(None, "--ledger", help=LEDGER_HELP),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Create the ledger (or change its budget). Entries are never deleted."""
    from lvtime.ledger import Ledger

    lg = Ledger(ledger)
    data = lg.init(budget, force=force)
    if as_json:
        print_json({"path": str(lg.path), "budget": data.budget, "entries": len(data.entries)})
    else:
        console.print(f"{lg.path}: budget {flops_str(data.budget)}, {len(data.entries)} entries")


@ledger_app.command("add")
def ledger_add(
    flops: float = typer.Option(..., "--flops", help="FLOPs spent, e.g. 4.22e15."),
    label: str = typer.Option(..., "--label", help="What the work was."),
    steps: str = typer.Option(None, help="Training steps, shown in reports."),
    ledger: Path = typer.Option(None, "--ledger", help=LEDGER_HELP),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Record work done elsewhere (counted as spent)."""
    from lvtime.ledger import Ledger

    config = {"steps": parse_ints(steps, "--steps")[0]} if steps else {}
    entry = Ledger(ledger).add(flops, label, config=config)
    if as_json:
        print_json(entry.model_dump(mode="json"))
    else:
        console.print(f"recorded {flops_str(flops)} FLOPs as {entry.id} ({label})")


@ledger_app.command("settle")
def ledger_settle(
    entry_id: str = typer.Argument(..., help="Id of the running entry (see `lvtime ledger`)."),
    spent: float = typer.Option(None, "--spent", help="FLOPs really spent \\[default: the reservation]."),
    force: bool = typer.Option(False, "--force", help="Settle an entry started on another host."),
    ledger: Path = typer.Option(None, "--ledger", help=LEDGER_HELP),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Close a stale reservation: an entry still `running` whose process is gone.

    lvtime checks that the process has ended (on this host) and records the entry as
    `settled`, charging its reservation unless --spent says what was really done.
    """
    from lvtime.ledger import Ledger

    entry = Ledger(ledger).settle(entry_id, spent, force=force)
    if as_json:
        print_json(entry.model_dump(mode="json"))
    else:
        console.print(f"settled {entry.id} ({entry.label}): {flops_str(entry.spent_flops)} FLOPs counted")


def _md_cell(text) -> str:
    """A table cell that cannot break the table: no newlines, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


@ledger_app.command("export")
def ledger_export(
    fmt: str = typer.Option("md", "--format", help="md or csv."),
    out: Path = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it holds an lvtime ledger table."),
    ledger: Path = typer.Option(None, "--ledger", help=LEDGER_HELP),
) -> None:
    """Write the per-experiment FLOP table a report needs."""
    from lvtime import outfiles
    from lvtime.ledger import Ledger, report_rows

    if out is not None:
        outfiles.check(out, force, "ledger-table")
    if fmt not in ("md", "csv"):
        raise UsageError(f"--format must be md or csv, not {fmt!r}")
    data = Ledger(ledger).read()
    rows = report_rows(data)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    else:
        lines = [
            f"FLOP budget: {flops_str(data.budget)}",
            "",
            "| Experiment | Status | Steps | FLOPs | % of budget | Cumulative |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in rows:
            bold = "**" if not r["kind"] else ""
            cum = flops_str(r["cumulative"]) if r["cumulative"] != "" else ""
            lines.append(
                f"| {bold}{_md_cell(r['experiment'])}{bold} | {r['status']} | {_md_cell(r['steps'])} | "
                f"{flops_str(r['flops'])} | {r['percent']:.2f}% | {cum} |"
            )
        text = "\n".join(lines) + "\n"
    if out:
        outfiles.write_text(out, text)
        console.print(f"wrote {out}")
    else:
        print(text, end="")
