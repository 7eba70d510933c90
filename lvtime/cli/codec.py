"""``lvtime encode`` and ``lvtime decode``: LLMTIME text and token ids, both ways."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import typer

from lvtime.cli.output import console, parse_floats, print_json, to_json
from lvtime.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("encode")(encode)
    app.command("decode")(decode)


def encode(
    data: Path = typer.Argument(None, help="HDF5 dataset (default: lotka_volterra_data.h5 in the working directory)."),
    series: list[int] = typer.Option(None, "--series", "-s", help="Series index; repeatable."),
    split: str = typer.Option(None, help="Encode a whole split: train, val or test."),
    all_series: bool = typer.Option(False, "--all", help="Encode every series."),
    prey: str = typer.Option(None, help="Inline prey values, comma-separated."),
    predator: str = typer.Option(None, help="Inline predator values, comma-separated."),
    steps: int = typer.Option(None, min=1, help="Encode only the first N timesteps."),
    decimals: int = typer.Option(2, min=0, max=8, help="Digits after the decimal point."),
    alpha: float = typer.Option(None, help="Use this scale instead of computing one."),
    global_alpha: bool = typer.Option(
        False, "--global-alpha", help="One alpha for the dataset, from its training split."
    ),
    tokens: bool = typer.Option(False, "--tokens", help="Also print Qwen2.5 token ids."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    jsonl: bool = typer.Option(False, "--jsonl", help="One JSON object per series per line."),
    out: Path = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it holds lvtime encode output."),
) -> None:
    """Turn series into LLMTIME text (and token ids with --tokens).

    Examples:\n
      lvtime encode --series 972 --tokens\n
      lvtime encode --prey 2.9,3.2,3.8 --predator 1.1,0.9,0.7\n
      lvtime encode data.h5 --split test --jsonl -o test.jsonl
    """
    from lvtime import llmtime, outfiles

    if out is not None:
        outfiles.check(out, force, "encoding")  # before reading a dataset
    if alpha is not None:
        _check_alpha(alpha)
    if global_alpha and (prey is not None or alpha is not None):
        raise UsageError("--global-alpha needs a dataset and no --alpha")
    names, arrays, train_alpha = _select(data, series, split, all_series, prey, predator, global_alpha)
    if steps is not None:
        arrays = arrays[:, :steps]
    fixed_alpha = alpha if alpha is not None else (train_alpha if global_alpha else None)
    texts, alphas = llmtime.encode_batch(arrays, fixed_alpha, decimals)
    records = [
        {"series": name, "alpha": float(a), "steps": int(arr.shape[0]), "text": text}
        for name, a, arr, text in zip(names, alphas, arrays, texts, strict=True)
    ]
    if tokens:
        from lvtime.tokenizer import fast_qwen_tokenizer

        tok = fast_qwen_tokenizer()
        for rec, enc in zip(records, tok.encode_batch(texts), strict=True):
            rec["token_ids"] = enc.ids
            rec["n_tokens"] = len(enc.ids)
    _write(records, as_json, jsonl, out)


def _select(data, series, split, all_series, prey, predator, want_global_alpha=False):
    """Resolve the input flags to (names, (N, T, 2) array, training-split alpha or None)."""
    from lvtime import data as lvdata

    if prey is not None or predator is not None:
        if prey is None or predator is None:
            raise UsageError("--prey and --predator go together")
        if data is not None or series or split or all_series:
            raise UsageError("inline --prey/--predator cannot be combined with a dataset")
        x = parse_floats(prey, "--prey")
        y = parse_floats(predator, "--predator")
        if len(x) != len(y) or not x:
            raise UsageError(f"--prey has {len(x)} values and --predator {len(y)}; need equal > 0")
        arr = np.array([x, y], dtype=np.float64).T[None]
        if not np.isfinite(arr).all():
            raise UsageError("inline values must be finite")
        return ["inline"], arr, None
    chosen = sum([bool(series), split is not None, all_series])
    if chosen != 1:
        raise UsageError("choose exactly one of --series, --split, --all (or --prey/--predator)")
    ds = lvdata.load_dataset(data or lvdata.DEFAULT_DATA_FILE)
    idx = lvdata.select_series(ds.n_series, series=series, split=split)
    g_alpha = lvdata.training_alpha(ds) if want_global_alpha else None
    return [int(i) for i in idx], ds.trajectories[idx], g_alpha


def _write(records: list[dict], as_json: bool, jsonl: bool, out: Path | None) -> None:
    from lvtime import outfiles

    if as_json and jsonl:
        raise UsageError("choose one of --json and --jsonl")
    if as_json or jsonl:
        if jsonl:
            text = "".join(to_json(r, indent=None) + "\n" for r in records)
        else:
            text = to_json(records[0] if len(records) == 1 else records) + "\n"
        if out:
            outfiles.write_text(out, text)
        else:
            sys.stdout.write(text)
        return
    if out:  # plain text file: one series per line, as a model would see it
        outfiles.write_text(out, "".join(r["text"] + "\n" for r in records))
        console.print(f"wrote {len(records)} series to {out}")
        return
    for r in records:
        console.print(
            f"[bold]series {r['series']}[/]  alpha={r['alpha']:.6g}  steps={r['steps']}"
            + (f"  tokens={r['n_tokens']}" if "n_tokens" in r else "")
        )
        console.print(r["text"], soft_wrap=True)
        if "token_ids" in r:
            console.print(str(r["token_ids"]), soft_wrap=True)


def decode(
    text: str = typer.Argument(..., help="LLMTIME text, or - to read stdin."),
    alpha: float = typer.Option(1.0, help="Scale the text was encoded with."),
    decimals: int = typer.Option(
        2, min=0, max=8, help="Digits expected after the point (truncated numbers are dropped)."
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Turn LLMTIME text back into prey and predator values.

    Tolerant of model output: steps that do not parse are dropped and reported,
    never an error. Exit code 0 even when steps were dropped; check the report.
    """
    from lvtime import llmtime

    _check_alpha(alpha)
    if text == "-":
        text = sys.stdin.read()
    result = llmtime.decode(text, alpha=alpha, decimals=decimals)
    if as_json:
        print_json(
            {
                "alpha": alpha,
                "prey": result.values[:, 0],
                "predator": result.values[:, 1],
                "steps": result.steps,
                **result.report(),
            }
        )
        return
    from rich.table import Table

    # A table of a million rows takes minutes to lay out: show both ends, point to --json.
    rows = list(zip(result.steps.tolist(), result.values.tolist(), strict=True))
    shown = rows if len(rows) <= 2 * TABLE_ROWS else rows[:TABLE_ROWS] + [None] + rows[-TABLE_ROWS:]
    table = Table("step", "prey", "predator", title=f"decoded (alpha={alpha:g})")
    for row in shown:
        if row is None:
            table.add_row("...", f"{len(rows) - 2 * TABLE_ROWS} rows", "(all with --json)")
            continue
        s, (x, y) = row
        table.add_row(str(s), f"{x:.6g}", f"{y:.6g}")
    console.print(table)
    console.print(f"parsed {len(result.steps)} of {result.n_steps} steps")
    for d in result.dropped[:TABLE_ROWS]:
        console.print(f"[yellow]dropped step {d.step}[/]: {d.reason} ({d.text[:60]!r})")
    if len(result.dropped) > TABLE_ROWS:
        console.print(f"[yellow]... and {len(result.dropped) - TABLE_ROWS} more dropped steps[/] (all with --json)")


TABLE_ROWS = 20


def _check_alpha(alpha: float) -> None:
    if not (math.isfinite(alpha) and alpha > 0):
        raise UsageError(f"--alpha must be positive and finite, not {alpha}")
