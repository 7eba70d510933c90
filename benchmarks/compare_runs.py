"""Two fine-tuning runs side by side: each step's training loss, and tokens/s (median over
steps, the first left out as warm-up) -- how a speed change is checked against the loss
curve it must keep.

    python benchmarks/compare_runs.py RUN_A RUN_B
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from lvtime import layout


def steps(run: Path) -> dict[int, dict]:
    return {r["step"]: r for r in layout.read_metrics(run) if "loss" in r}


def main() -> None:
    a, b = (Path(p) for p in sys.argv[1:3])
    ra, rb = steps(a), steps(b)
    print(f"{'step':>4} {'loss ' + a.name:>14} {'loss ' + b.name:>14} {'diff':>9}")
    for s in sorted(set(ra) & set(rb)):
        la, lb = ra[s]["loss"], rb[s]["loss"]
        print(f"{s:4d} {la:14.4f} {lb:14.4f} {lb - la:+9.4f}")
    for name, rows in ((a.name, ra), (b.name, rb)):
        tps = [r["tokens_per_s"] for s, r in sorted(rows.items()) if s > 1]
        print(f"{name}: median {statistics.median(tps):.0f} tokens/s over steps 2-{max(rows)}")


if __name__ == "__main__":
    main()
