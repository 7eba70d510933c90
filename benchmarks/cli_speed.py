"""Speed of the fast paths: encoding the whole dataset, and fresh `lvtime` processes.

    python benchmarks/cli_speed.py

Prints the median of several runs for: encoding 1000 x 100 x 2 values to LLMTIME text
in-process; and wall time of fresh processes for `lvtime encode --prey ... --predator ...`,
`lvtime flops --seq 768`, `lvtime ledger add` and `lvtime --help`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    from lvtime import llmtime, simulation

    ds = simulation.simulate(n=1000, points=100, seed=0)
    t = median_time(lambda: llmtime.encode_batch(ds.trajectories), 5)
    print(f"encode 1000 x 100 x 2 to text (in-process, median of 5): {t * 1e3:.0f} ms")

    exe = shutil.which("lvtime") or os.path.join(os.path.dirname(sys.executable), "lvtime")
    tmp = tempfile.mkdtemp()
    env = {**os.environ, "LVTIME_LEDGER": os.path.join(tmp, "ledger.json")}
    commands = {
        "lvtime --help": [exe, "--help"],
        "lvtime encode --prey ... --predator ...": [
            exe,
            "encode",
            "--prey",
            "2.9,3.2,3.8,4.5,5.1",
            "--predator",
            "1.1,0.9,0.7,0.6,0.5",
        ],
        "lvtime flops --seq 768": [exe, "flops", "--seq", "768"],
        "lvtime ledger add": [exe, "ledger", "add", "--flops", "4.22e15", "--label", "bench"],
        "lvtime ledger": [exe, "ledger"],
    }
    for name, cmd in commands.items():
        t = median_time(lambda cmd=cmd: subprocess.run(cmd, env=env, check=True, capture_output=True), 7)
        print(f"{name:42s} fresh process, median of 7: {t * 1e3:.0f} ms")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
