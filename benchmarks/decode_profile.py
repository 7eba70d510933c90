"""Where a sampled forecast's decoding steps go: torch.profiler over a window of steps.

One batch of ``--series`` series x ``--samples`` samples (temperature 0.7) of a dataset's
test split, history 50 -> horizon 50, decoded as ``lvtime forecast`` does; the profiler
records decoding steps ``--from`` to ``--from + --steps`` only (a whole batch records
millions of events and fills the memory), then prints the top operators and the wall
time of the unprofiled batch.

    python benchmarks/decode_profile.py study_series_0-899.h5 --series 6 --samples 10 --from 400 --steps 20
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="HDF5 file in the study's layout")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--series", type=int, default=6)
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--from", dest="start", type=int, default=400, help="first profiled decoding step")
    p.add_argument("--steps", type=int, default=20, help="decoding steps profiled")
    p.add_argument("--dtype", default="bfloat16")
    args = p.parse_args()

    from lvtime import data, generation
    from lvtime.models import load_model

    ds = data.load_dataset(args.data)
    test = data.split_indices(ds.n_series)["test"][: args.series]
    lm = load_model(args.model, dtype=args.dtype)
    rows = args.series * args.samples
    print(f"{args.model} ({lm.dtype}), {rows} rows in one batch, {torch.get_num_threads()} threads")
    step, window = _windowed(generation._decode_step, args.start, args.steps)
    generation._decode_step = step
    t0 = time.perf_counter()
    result = generation.forecast(lm.model, lm.tokenizer, lm.architecture, ds.trajectories[test], test, 50, 50,
                                 batch_size=rows, num_samples=args.samples, temperature=0.7)  # fmt: skip
    wall = time.perf_counter() - t0
    print(f"steps {args.start}-{args.start + args.steps}: {window['ms']:.1f} ms a step (profiled)")
    print(window["profile"].key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    print(f"the batch: {wall:.1f} s with the profiled window, {result.flops / wall / 1e9:.0f} GFLOP/s counted")


def _windowed(decode_step, start: int, steps: int):
    """``decode_step`` wrapped to profile calls ``start`` .. ``start + steps - 1``."""
    window = {"calls": 0}

    def step(*args, **kwargs):
        i = window["calls"]
        window["calls"] += 1
        if i == start:
            window["profile"] = profile(activities=[ProfilerActivity.CPU])
            window["profile"].__enter__()
            window["t0"] = time.perf_counter()
        out = decode_step(*args, **kwargs)
        if i == start + steps - 1:
            window["ms"] = 1000 * (time.perf_counter() - window["t0"]) / steps
            window["profile"].__exit__(None, None, None)
        return out

    return step, window


if __name__ == "__main__":
    main()
