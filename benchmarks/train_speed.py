"""Training throughput: lvtime's loss path versus a plain reference loop.

Reference: ``model(input_ids, attention_mask, labels=labels).loss.backward()`` with the
same LoRA setup (rank 8 on q/v), AdamW on the LoRA parameters. lvtime: the trainer's
``LossHead`` (hidden states of labelled positions only; optional numeric head), with
weights in float32 or bfloat16 (+ autocast), eager or compiled (``finetune --compile``).
Each configuration runs in its own process so that peak memory (max RSS) is its own;
each prints its loss at every step (warm-up included), so paths can be compared.

    python benchmarks/train_speed.py --model smollm2-135m-instruct --batch 4 --context 256
    python benchmarks/train_speed.py --context 1024 --match "numeric head"   # eager vs compiled
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CONFIGS = [  # name, loss path, weights dtype, head, torch.compile (finetune --compile)
    ("reference fp32", "reference", "float32", "full", False),
    ("reference bf16", "reference", "bfloat16", "full", False),
    ("lvtime fp32 full head", "lvtime", "float32", "full", False),
    ("lvtime bf16 full head", "lvtime", "bfloat16", "full", False),
    ("lvtime bf16 numeric head", "lvtime", "bfloat16", "numeric", False),
    ("lvtime bf16 numeric head compiled", "lvtime", "bfloat16", "numeric", True),
]


def one(args, path: str, dtype: str, head: str, compiled: bool) -> dict:
    import numpy as np
    import torch

    from lvtime import llmtime, lora, simulation, training, windows
    from lvtime.models import load_model
    from lvtime.tokenizer import llmtime_token_ids

    torch.manual_seed(0)
    lm = load_model(args.model, device=args.device, dtype=dtype)
    lora.inject(lm.model, rank=8)
    if compiled:
        lm.model.model.compile()  # as finetune --compile does; compiling happens in the warm-up steps
    ds = simulation.simulate(n=16, points=100, seed=0)
    from lvtime.config import FinetuneConfig

    seqs = windows.encode_series(ds, np.arange(16), lm.tokenizer, FinetuneConfig(), None)
    w = windows.make_windows(seqs, args.context, args.context // 2, lm.tokenizer.pad_token_id)
    opt = torch.optim.AdamW(lora.lora_parameters(lm.model), lr=1e-4)
    ids = None
    if head == "numeric":
        ids = [*llmtime_token_ids(lm.tokenizer, llmtime.LLMTIME_ALPHABET).values(), lm.tokenizer.eos_token_id]
    loss_head = training.LossHead(lm.model, ids)
    autocast = training._autocast(lm.device, getattr(torch, dtype))
    lm.model.train()
    times, tokens, losses = [], 0, []
    for step in range(args.warmup + args.steps):
        sel = [(step * args.batch + i) % len(w) for i in range(args.batch)]
        batch = [t[sel].to(lm.device) for t in (w.input_ids, w.attention_mask, w.labels)]
        if lm.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast:
            if path == "reference":
                loss = lm.model(input_ids=batch[0], attention_mask=batch[1], labels=batch[2]).loss
            else:
                total, n = loss_head(*batch)
                loss = total / n
        losses.append(float(loss))
        loss.backward()
        opt.step()
        opt.zero_grad()
        if lm.device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
            tokens += int(batch[1].sum())
    return {
        "tokens_per_s": tokens / sum(times),
        "s_per_step": sum(times) / len(times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loss": float(loss),
        "losses": losses,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--match", default="", help="run only the configurations whose name contains this")
    p.add_argument("--only", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.only:
        name = args.only
        _, path, dtype, head, compiled = next(c for c in CONFIGS if c[0] == name)
        print(json.dumps(one(args, path, dtype, head, compiled)))
        return
    print(f"model {args.model}, batch {args.batch} x {args.context}, {args.steps} timed steps, LoRA r8 q/v")
    base = None
    for name, *_ in CONFIGS:
        if args.match not in name:
            continue
        cmd = [sys.executable, __file__, "--only", name] + [
            f"--{k}={v}" for k, v in vars(args).items() if k not in ("only", "match") and v is not None
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"{name:36s} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        base = base or r["tokens_per_s"]
        print(
            f"{name:36s} {r['tokens_per_s']:9.0f} tok/s  {r['s_per_step']:6.2f} s/step  "
            f"x{r['tokens_per_s'] / base:4.2f}  peak RSS {r['peak_rss_mb']:6.0f} MB"
        )
        print(f"{'':36s} losses: {' '.join(f'{x:.4f}' for x in r['losses'])}")


if __name__ == "__main__":
    main()
