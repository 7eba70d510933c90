"""How many decoding steps would prompt-lookup drafting save on real forecasts?

Reads the forecasts a ``lvtime forecast`` run wrote (``forecasts.npz``), rebuilds each
series' prompt and greedy output as LLMTIME text, and replays prompt-lookup decoding on
them: at each round, find the latest earlier occurrence of the last ``n`` characters and
draft the ``k`` characters that followed it; the model would accept the draft up to the
first character it disagrees with, plus one token of its own. Prints the tokens gained
per round (per row, and per lock-step batch, where the slowest row sets the rounds).

Nothing is decoded here: this bounds what drafting could give before it is built.

    python benchmarks/draft_acceptance.py runs/forecast --batch 50
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lvtime.llmtime import format_steps


def rounds(context: str, output: str, n: int, k: int) -> int:
    """Verification rounds prompt-lookup drafting needs to reproduce ``output``."""
    done, count = 0, 0
    while done < len(output):
        seen = context + output[:done]
        at = seen.rfind(seen[-n:], 0, len(seen) - 1)
        draft = seen[at + n : at + n + k] if at >= 0 else ""
        accepted = 0
        while accepted < len(draft) and done + accepted < len(output) and draft[accepted] == output[done + accepted]:
            accepted += 1
        done += accepted + 1
        count += 1
    return count


def texts(folder: Path, decimals: int) -> list[tuple[str, str]]:
    saved = np.load(folder / "forecasts.npz")
    pairs = []
    for alpha, history, forecast in zip(saved["alpha"], saved["history"], saved["forecast"], strict=True):
        pairs.append((format_steps(history / alpha, decimals) + ";", format_steps(forecast / alpha, decimals)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="lvtime forecast --out folders")
    parser.add_argument("--batch", type=int, default=50, help="rows decoded in lock step")
    parser.add_argument("--decimals", type=int, default=2)
    args = parser.parse_args()
    print("| forecast | n | k | tokens/round per row | per batch of", args.batch, "|")
    print("|---|---:|---:|---:|---:|")
    for folder in args.folders:
        pairs = texts(folder, args.decimals)
        lengths = np.array([len(out) for _, out in pairs])
        for n in (3, 4, 6):
            for k in (4, 8):
                r = np.array([rounds(ctx, out, n, k) for ctx, out in pairs])
                batches = range(0, len(pairs), args.batch)
                batch_gain = sum(lengths[b : b + args.batch].max() for b in batches) / sum(
                    r[b : b + args.batch].max() for b in batches
                )
                print(f"| {folder.name} | {n} | {k} | {lengths.sum() / r.sum():.2f} | {batch_gain:.2f} |")


if __name__ == "__main__":
    main()
