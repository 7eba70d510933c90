"""``lvtime encode`` and ``lvtime decode``: LLMTIME text and token ids, both ways."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from lvtime.cli import options
from lvtime.cli.output import console, print_json, styled, to_json
from lvtime.config import DEFAULT_DATA_FILE, DecodeOptions, EncodeOptions
from lvtime.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("encode", cls=options.Command)(options.command(EncodeOptions)(encode))
    app.command("decode", cls=options.Command)(options.command(DecodeOptions)(decode))


def encode(given: options.Given) -> None:
    """Turn series into LLMTIME text (and token ids with --tokens).

    Examples:\n
      lvtime encode --series 972 --tokens\n
      lvtime encode --prey 2.9,3.2,3.8 --predator 1.1,0.9,0.7\n
      lvtime encode data.h5 --split test --jsonl -o test.jsonl
    """
    from lvtime import llmtime, outfiles

    o = given.build(EncodeOptions)
    if o.out is not None:
        outfiles.check(o.out, o.force, "encoding")  # before reading a dataset
    if o.as_json and o.jsonl:
        raise UsageError("choose one of --json and --jsonl")
    if o.alpha_mode == "global" and (o.prey or o.alpha is not None):
        raise UsageError("--alpha-mode global needs a dataset and no --alpha")
    if o.alpha is not None and len(o.alpha) == 2 and o.scale != "species":
        raise UsageError("--alpha prey,predator needs --scale species")
    names, arrays, train_alpha = _select(o)
    if o.steps is not None:
        arrays = arrays[:, : o.steps]
    fixed_alpha = _alpha(o.alpha) if o.alpha is not None else train_alpha
    texts, alphas = llmtime.encode_batch(arrays, fixed_alpha, o.decimals, o.scale)
    records = [
        {"series": name, "alpha": a.tolist(), "steps": int(arr.shape[0]), "text": text}
        for name, a, arr, text in zip(names, alphas, arrays, texts, strict=True)
    ]
    if o.tokens:
        from lvtime.tokenizer import fast_qwen_tokenizer

        tok = fast_qwen_tokenizer()
        for rec, enc in zip(records, tok.encode_batch(texts), strict=True):
            rec["token_ids"] = enc.ids
            rec["n_tokens"] = len(enc.ids)
    _write(records, o.as_json, o.jsonl, Path(o.out) if o.out else None)


def _select(o: EncodeOptions):
    """Resolve the input options to (names, (N, T, 2) array, training-split alpha or None)."""
    import numpy as np

    from lvtime import data as lvdata

    if o.prey or o.predator:
        if not (o.prey and o.predator):
            raise UsageError("--prey and --predator go together")
        if o.data is not None or o.series or o.split or o.all_series:
            raise UsageError("inline --prey/--predator cannot be combined with a dataset")
        if len(o.prey) != len(o.predator):
            raise UsageError(f"--prey has {len(o.prey)} values and --predator {len(o.predator)}; need equal > 0")
        return ["inline"], np.array([o.prey, o.predator], dtype=np.float64).T[None], None
    chosen = sum([bool(o.series), o.split is not None, o.all_series])
    if chosen != 1:
        raise UsageError("choose exactly one of --series, --split, --all (or --prey/--predator)")
    ds = lvdata.load_dataset(o.data or DEFAULT_DATA_FILE)
    idx = lvdata.select_series(ds.n_series, series=o.series, split=o.split)
    g_alpha = lvdata.training_alpha(ds, scale=o.scale) if o.alpha_mode == "global" else None
    return [int(i) for i in idx], ds.trajectories[idx], g_alpha


def _write(records: list[dict], as_json: bool, jsonl: bool, out: Path | None) -> None:
    from lvtime import outfiles

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
        tokens = f"  tokens={r['n_tokens']}" if "n_tokens" in r else ""
        console.print(
            styled((f"series {r['series']}", "bold"), f"  alpha={_shown(r['alpha'])}  steps={r['steps']}{tokens}")
        )
        console.print(r["text"], soft_wrap=True)
        if "token_ids" in r:
            console.print(str(r["token_ids"]), soft_wrap=True)


def decode(given: options.Given) -> None:
    """Turn LLMTIME text back into prey and predator values.

    Tolerant of model output: steps that do not parse are dropped and reported,
    never an error. Exit code 0 even when steps were dropped; check the report.
    """
    from lvtime import llmtime

    o = given.build(DecodeOptions)
    text, alpha, decimals, as_json = o.text, _alpha(o.alpha), o.decimals, o.as_json
    if text == "-":
        text = sys.stdin.read()
    result = llmtime.decode(text, alpha=alpha, decimals=decimals)
    if as_json:
        print_json(
            {
                "alpha": o.alpha[0] if len(o.alpha) == 1 else o.alpha,
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
    table = Table("step", "prey", "predator", title=f"decoded (alpha={_shown(o.alpha)})")
    for row in shown:
        if row is None:
            table.add_row("...", f"{len(rows) - 2 * TABLE_ROWS} rows", "(all with --json)")
            continue
        s, (x, y) = row
        table.add_row(str(s), f"{x:.6g}", f"{y:.6g}")
    console.print(table)
    console.print(f"parsed {len(result.steps)} of {result.n_steps} steps")
    for d in result.dropped[:TABLE_ROWS]:
        console.print(styled((f"dropped step {d.step}", "yellow"), f": {d.reason} ({d.text[:60]!r})"))
    if len(result.dropped) > TABLE_ROWS:
        more = f"... and {len(result.dropped) - TABLE_ROWS} more dropped steps"
        console.print(styled((more, "yellow"), " (all with --json)"))


TABLE_ROWS = 20


def _alpha(values: list[float]):
    """``--alpha``: one number for both species, or a (prey, predator) pair."""
    return values[0] if len(values) == 1 else tuple(values)


def _shown(alpha) -> str:
    return ",".join(f"{a:.6g}" for a in alpha) if isinstance(alpha, list) else f"{alpha:.6g}"
