"""``lvtime flops`` (what will it cost?) and ``lvtime ledger`` (what has been spent?)."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

import typer

from lvtime.cli import options
from lvtime.cli.output import console, flops_str, pct, print_json, print_table, styled
from lvtime.config import (
    FlopsOptions,
    JsonFlag,
    LedgerAddOptions,
    LedgerExportOptions,
    LedgerFlag,
    LedgerInitOptions,
    LedgerSettleOptions,
)
from lvtime.errors import UsageError
from lvtime.shell import markdown_cell


def register(app: typer.Typer) -> None:
    app.command("flops", cls=options.Command)(options.command(FlopsOptions)(flops))
    ledger = typer.Typer(
        cls=options.Group,
        help="Show the FLOP budget ledger (entries, spent, reserved, remaining); subcommands manage it.",
        no_args_is_help=False,
        invoke_without_command=True,
    )
    ledger.callback()(options.command(JsonFlag, LedgerFlag)(ledger_show))
    ledger.command("init", cls=options.Command)(options.command(LedgerInitOptions)(ledger_init))
    ledger.command("add", cls=options.Command)(options.command(LedgerAddOptions)(ledger_add))
    ledger.command("settle", cls=options.Command)(options.command(LedgerSettleOptions)(ledger_settle))
    ledger.command("export", cls=options.Command)(options.command(LedgerExportOptions)(ledger_export))
    app.add_typer(ledger, name="ledger")


def current_budget(ledger_path: str | None) -> float:
    from lvtime.ledger import Ledger

    return Ledger(ledger_path).budget()


def flops(given: options.Given) -> None:
    """Estimate the FLOPs of a forward pass, a training run or a generation.

    Examples:\n
      lvtime flops --seq 768\n
      lvtime flops --context 512 --batch-size 4 --steps 600 --rank 8\n
      lvtime flops --mode generate --seq 550 --new-tokens 550 --batch-size 100
    """
    o = given.build(FlopsOptions)
    result = _flops_result(o)
    if o.as_json:
        print_json(result)
        return
    if o.breakdown:
        _print_breakdown(result)
    _print_cost(result)


def _flops_result(o: FlopsOptions) -> dict:
    """What ``lvtime flops`` reports: the components of one pass, a training step, the run."""
    from lvtime.alphabet import head_vocab
    from lvtime.flops import TRAIN_MULTIPLIER, LoraSpec, forward_flops, generate_flops, resolve_architecture
    from lvtime.flops import total as sum_flops

    arch = resolve_architecture(o.model)
    hv = head_vocab(o.head)
    lora = None
    if o.rank > 0 and o.mode != "generate":  # generation runs on a merged adapter
        lora = LoraSpec(rank=o.rank, targets=o.targets)
    kw = dict(lora=lora, convention=o.convention, head_vocab=hv)
    if o.mode == "generate":
        if o.new_tokens < 1:
            raise UsageError("--mode generate needs --new-tokens >= 1")
        components = forward_flops(arch, o.context, o.batch_size, head_positions=1, **kw)
        gen = generate_flops(arch, o.context, o.new_tokens, o.batch_size, convention=o.convention, head_vocab=hv)
        run = gen["total"]
    else:
        components = forward_flops(arch, o.context, o.batch_size, **kw)
        gen = None
    fwd = sum_flops(components)
    step = TRAIN_MULTIPLIER * fwd
    if o.mode != "generate":
        run = o.steps * (step if o.mode == "train" else fwd)
    budget = current_budget(o.ledger)
    result = {
        "model": arch.name,
        "convention": o.convention,
        "mode": o.mode,
        "seq": o.context,
        "batch": o.batch_size,
        "steps": o.steps,
        "lora": asdict(lora) if lora else None,
        "head_vocab": hv or arch.vocab_size,
        "components": components,
        "forward": fwd,
        "train_step": step,
        "run": run,
        "budget": budget,
        "budget_fraction": run / budget,
    }
    if gen:
        result.update(new_tokens=o.new_tokens, prefill=gen["prefill"], decode=gen["decode"])
    return result


def _print_breakdown(r: dict) -> None:
    from rich.table import Table

    title = f"{r['model']}, {r['convention']}: one forward pass, batch {r['batch']} x {r['seq']} tokens"
    table = Table("component", "FLOPs", "% of forward", title=title)
    for name, value in r["components"].items():
        if value:
            table.add_row(name, flops_str(value), pct(value, r["forward"]))
    table.add_section()
    table.add_row(styled(("forward pass", "bold")), styled((flops_str(r["forward"]), "bold")), "100%")
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


def ledger_show(given: options.Given) -> None:
    """Show entries and totals (spent, reserved, remaining). Stale = its process died."""
    if given.ctx is not None and given.ctx.invoked_subcommand is not None:
        return
    from lvtime.ledger import Ledger

    o, lg = given.build(JsonFlag), Ledger(given.build(LedgerFlag).ledger)
    data = lg.read()
    totals = data.totals()
    if o.as_json:
        entries = [{**e.model_dump(mode="json"), "stale": e.is_stale()} for e in data.entries]
        print_json({"path": str(lg.path), "exists": lg.exists(), **totals, "entries": entries})
        return
    from rich.table import Table

    table = Table("id", "label", "kind", "status", "estimate", "spent", "% budget", title=str(lg.path))
    for e in data.entries:
        status = styled(("stale", "red")) if e.is_stale() else e.status
        spent = flops_str(e.spent_flops) if e.spent_flops is not None else "-"
        table.add_row(e.id, e.label, e.kind, status, flops_str(e.estimated_flops), spent, pct(e.counted, data.budget))
    print_table(table, optional=("estimate", "kind", "% budget"), whole=("id",))
    console.print(
        f"budget {flops_str(totals['budget'])}  spent {flops_str(totals['spent'])}  "
        f"reserved {flops_str(totals['reserved'])}  remaining {flops_str(totals['remaining'])}  "
        f"({100 * totals['used_fraction']:.3g}% used)"
    )
    if not lg.exists():
        console.print("(no ledger file yet: the first run or `lvtime ledger init` creates it)", style="dim")


def ledger_init(given: options.Given) -> None:
    """Create the ledger (or change its budget). Entries are never deleted."""
    from lvtime.ledger import Ledger

    o = given.build(LedgerInitOptions)
    lg = Ledger(o.ledger)
    data = lg.init(o.budget, force=o.force)
    if o.as_json:
        print_json({"path": str(lg.path), "budget": data.budget, "entries": len(data.entries)})
    else:
        console.print(f"{lg.path}: budget {flops_str(data.budget)}, {len(data.entries)} entries")


def ledger_add(given: options.Given) -> None:
    """Record work done elsewhere (counted as spent)."""
    from lvtime.ledger import Ledger

    o = given.build(LedgerAddOptions)
    config = {"steps": o.steps} if o.steps is not None else {}
    entry = Ledger(o.ledger).add(o.flops, o.label, config=config)
    if o.as_json:
        print_json(entry.model_dump(mode="json"))
    else:
        console.print(f"recorded {flops_str(o.flops)} FLOPs as {entry.id} ({o.label})")


def ledger_settle(given: options.Given) -> None:
    """Close a stale reservation: an entry still `running` whose process is gone.

    lvtime checks that the process has ended (on this host) and records the entry as
    `settled`, charging its reservation unless --spent says what was really done.
    --force settles an entry started on another host.
    """
    from lvtime.ledger import Ledger

    o = given.build(LedgerSettleOptions)
    entry = Ledger(o.ledger).settle(o.entry_id, o.spent, force=o.force)
    if o.as_json:
        print_json(entry.model_dump(mode="json"))
    else:
        console.print(f"settled {entry.id} ({entry.label}): {flops_str(entry.spent_flops)} FLOPs counted")


def ledger_export(given: options.Given) -> None:
    """Write the per-experiment FLOP table a report needs (Markdown or CSV: --format,
    else the extension of --out)."""
    from lvtime import outfiles
    from lvtime.ledger import Ledger, report_rows

    o = given.build(LedgerExportOptions)
    out = Path(o.out) if o.out else None
    if out is not None:
        outfiles.check(out, o.force, "ledger-table", ledger=o.ledger)
    fmt = o.format or ("csv" if out is not None and out.suffix.lower() == ".csv" else "md")
    data = Ledger(o.ledger).read()
    text = _csv(report_rows(data)) if fmt == "csv" else _markdown(report_rows(data), data.budget)
    if out:
        outfiles.write_text(out, text)
        console.print(f"wrote {out}")
    else:
        print(text, end="")


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _markdown(rows: list[dict], budget: float) -> str:
    lines = [
        f"FLOP budget: {flops_str(budget)}",
        "",
        "| Experiment | Status | Steps | FLOPs | % of budget | Cumulative |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        bold = "**" if not r["kind"] else ""
        cum = flops_str(r["cumulative"]) if r["cumulative"] != "" else ""
        lines.append(
            f"| {bold}{markdown_cell(r['experiment'])}{bold} | {r['status']} | {markdown_cell(r['steps'])} | "
            f"{flops_str(r['flops'])} | {r['percent']:.2f}% | {cum} |"
        )
    return "\n".join(lines) + "\n"
