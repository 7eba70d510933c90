"""Forecasting throughput: lvtime's batched constrained decoding versus a naive loop.

Naive loop: one series at a time, ``model.generate`` (greedy, unconstrained, with a
KV cache, as many new tokens as the constrained decoder may use), parsed afterwards.
lvtime: ``generation.forecast`` over all series in batches, once per ``--kv-cache``
(``dynamic``: transformers' concatenating cache, lvtime's earlier path; ``preallocated``:
lvtime's buffer, the default) and ``--batch-size``. All use the same model, dtype,
prompts (first ``--history`` steps) and horizon; greedy texts of every lvtime
configuration are compared with the first one's. The naive loop is slow, so it runs
on the first ``--naive-series`` series (0 skips it); series/s is reported for each.

    python benchmarks/forecast_speed.py --model smollm2-135m-instruct --series 100 --naive-series 10
    python benchmarks/forecast_speed.py --series 50 --naive-series 0 --kv-cache dynamic preallocated --batch-size 50
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data", default=None, help="HDF5 file (default: simulate 1000 series, seed 0)")
    p.add_argument("--series", type=int, default=100, help="test series for lvtime")
    p.add_argument("--naive-series", type=int, default=10)
    p.add_argument("--history", type=int, default=50)
    p.add_argument("--horizon", type=int, default=50)
    p.add_argument("--batch-size", type=int, nargs="+", default=[25, 50])
    p.add_argument("--kv-cache", nargs="+", default=["dynamic", "preallocated"])
    p.add_argument("--num-samples", type=int, default=1, help="> 1 samples at temperature 0.7")
    p.add_argument("--dtype", default="bfloat16")
    args = p.parse_args()

    from lvtime import data, generation, simulation
    from lvtime.models import load_model

    ds = data.load_dataset(args.data) if args.data else simulation.simulate(n=1000, seed=0)
    test = data.split_indices(ds.n_series)["test"][: args.series]
    traj = ds.trajectories[test]
    lm = load_model(args.model, dtype=args.dtype)
    print(
        f"{args.model} ({lm.dtype}, {lm.device}), history {args.history}, horizon {args.horizon}, "
        f"{torch.get_num_threads()} threads"
    )

    naive_rate = naive_loop(args, lm, traj) if args.naive_series else None
    first = None
    for cache in args.kv_cache:
        for bs in args.batch_size:
            t0 = time.perf_counter()
            r = generation.forecast(
                lm.model,
                lm.tokenizer,
                lm.architecture,
                traj,
                test,
                args.history,
                args.horizon,
                batch_size=bs,
                num_samples=args.num_samples,
                temperature=0.7 if args.num_samples > 1 else 0.0,
                kv_cache=cache,
            )
            dt = time.perf_counter() - t0
            first = first or r
            good = len(test) * args.num_samples - r.parse_failures
            vs_naive = f"  x{len(test) / dt / naive_rate:.1f} naive" if naive_rate else ""
            print(
                f"lvtime {cache:12s} batch {bs:3d}  {len(test):4d} series  {dt:7.1f} s  {len(test) / dt:.3f} series/s  "
                f"{r.tokens_processed / dt:.0f} tok/s  parsed {good}/{good + r.parse_failures}  "
                f"same texts as first: {r.texts == first.texts}  FLOPs {r.flops:.4e}{vs_naive}",
                flush=True,
            )
            assert np.isfinite(r.forecast).all()


def naive_loop(args, lm, traj) -> float:
    from lvtime import generation, llmtime

    prompts, alphas = generation.prompts_for(traj[:, : args.history], lm.tokenizer, 2)
    budget = generation.max_new_tokens(args.horizon, 2, 2)
    ok = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(args.naive_series):
            ids = torch.tensor([prompts[i]], device=lm.device)
            out = lm.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=budget,
                do_sample=False,
                pad_token_id=lm.tokenizer.eos_token_id,
            )
            text = lm.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            steps = text.split(";")[: args.horizon]
            d = llmtime.decode(";".join(steps), alphas[i])
            ok += int(d.ok and len(d.steps) == args.horizon)
    naive_s = time.perf_counter() - t0
    naive_rate = args.naive_series / naive_s
    print(
        f"naive loop        {args.naive_series:4d} series  {naive_s:7.1f} s  {naive_rate:.3f} series/s  "
        f"parsed {ok}/{args.naive_series} ({100 * ok / args.naive_series:.0f}%)"
    )

    return naive_rate


if __name__ == "__main__":
    main()
