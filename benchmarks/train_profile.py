"""Where a training step's time goes: torch.profiler over lvtime's own step (the trainer's
``_Stepper``: loss head, backward, AdamW on the LoRA factors) at the recipe's shape.

    python benchmarks/train_profile.py [--model smollm2-135m-instruct] [--batch 4] [--context 1024]
        [--steps 3] [--rows 25]

Prints the top operators by self CPU time, and the step time and tokens/s outside the
profiler (the profiler itself costs a little).
"""

from __future__ import annotations

import argparse
import time


def build(args):
    import numpy as np
    import torch

    from lvtime import llmtime, lora, simulation, training, windows
    from lvtime.config import FinetuneConfig
    from lvtime.distributed import Dist
    from lvtime.models import load_model
    from lvtime.tokenizer import llmtime_token_ids

    torch.manual_seed(0)
    lm = load_model(args.model, device="cpu", dtype="bfloat16")
    lora.inject(lm.model, rank=8)
    ds = simulation.simulate(n=32, points=100, seed=0)
    cfg = FinetuneConfig(steps=1000, batch_size=args.batch, context=args.context, head="numeric", dtype="bfloat16")
    seqs = windows.encode_series(ds, np.arange(32), lm.tokenizer, cfg, None)
    w = windows.make_windows(seqs, args.context, args.context // 2, lm.tokenizer.pad_token_id)
    ids = [*llmtime_token_ids(lm.tokenizer, llmtime.LLMTIME_ALPHABET).values(), lm.tokenizer.eos_token_id]
    head = training.LossHead(lm.model, ids)
    tdata = windows.TrainingData(train=w, val=w, alpha=None)
    stepper = training._Stepper(cfg, lm.model, head, tdata, Dist(), lambda: training._autocast("cpu", torch.bfloat16))
    lm.model.train()
    return stepper, w


def main() -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rows", type=int, default=25)
    args = p.parse_args()
    stepper, w = build(args)

    def boom():
        raise RuntimeError("non-finite loss")

    stepper.step(0, boom)  # warm-up
    t0, tokens = time.perf_counter(), 0
    for s in range(1, 1 + args.steps):
        _, _, n = stepper.step(s, boom)
        tokens += n
    took = time.perf_counter() - t0
    print(f"{args.model} {args.batch}x{args.context} bf16 numeric head: {took / args.steps:.2f} s/step, "
          f"{tokens / took:.0f} tokens/s, {torch.get_num_threads()} threads")  # fmt: skip
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for s in range(1 + args.steps, 1 + 2 * args.steps):
            stepper.step(s, boom)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=50))


if __name__ == "__main__":
    main()
