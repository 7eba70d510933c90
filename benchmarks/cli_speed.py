"""Speed of the fast paths: encoding the whole dataset, and fresh `lvtime` processes.

    python benchmarks/cli_speed.py

Prints the median of several runs for: encoding 1000 x 100 x 2 values to LLMTIME text
in-process; and wall time of fresh processes (median of 10) for `lvtime encode --prey ...
--predator ...`, `lvtime flops --seq 768`, `lvtime ledger add` and `lvtime --help`, next
to three floors: importing typer, rich and pydantic (issue 26's floor), the same plus
numpy, and a one-command Typer app with one option (what any Typer CLI pays to run).
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
    bare_typer = "import typer\napp = typer.Typer()\n@app.command()\ndef f(seq: int = 1):\n    print(seq)\napp()\n"
    commands = {
        "floor: import typer, rich, pydantic": [sys.executable, "-c", "import typer, rich, pydantic"],
        "floor: the same plus numpy": [sys.executable, "-c", "import typer, rich, pydantic, numpy"],
        "floor: a one-option Typer command": [sys.executable, "-c", bare_typer, "--seq", "3"],
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
        "lvtime flops --seq 768 --json": [exe, "flops", "--seq", "768", "--json"],
        "lvtime ledger add": [exe, "ledger", "add", "--flops", "4.22e15", "--label", "bench"],
        "lvtime ledger": [exe, "ledger"],
    }
    for name, cmd in commands.items():
        t = median_time(lambda cmd=cmd: subprocess.run(cmd, env=env, check=True, capture_output=True), 10)
        print(f"{name:42s} fresh process, median of 10: {t * 1e3:.0f} ms")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
