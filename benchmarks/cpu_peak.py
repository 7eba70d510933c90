"""The attainable matmul FLOP/s of this machine: the ceiling training is measured against.

Times ``x @ W.T`` at the shapes of a model's projections (tokens x hidden -> out, as a
training step of ``batch x context`` tokens runs them) and at one large square shape,
in bfloat16 and float32, with the thread count training uses. FLOPs are counted as
2*m*n*k (what a matmul does; the study's convention counts 2n-1 per dot product, the same
to 0.1% at these sizes).

    python benchmarks/cpu_peak.py [--model smollm2-135m-instruct] [--tokens 4096] [--threads N]
"""

from __future__ import annotations

import argparse
import time


def shapes(model: str, tokens: int) -> dict[str, tuple[int, int, int]]:
    """name -> (m, k, n) of the model's projections for ``tokens`` rows, and a square one."""
    from lvtime.flops import module_shapes, resolve_architecture

    arch = resolve_architecture(model)
    out = {name: (tokens, fin, fout) for name, (fin, fout) in module_shapes(arch, "exact").items()}
    out["square 2048"] = (2048, 2048, 2048)
    return out


def flops_per_s(m: int, k: int, n: int, dtype, seconds: float = 1.0) -> float:
    import torch

    x, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
    for _ in range(3):  # warm up (AMX tiles, caches)
        x @ w.t()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x @ w.t()
        reps += 1
    return 2 * m * n * k * reps / (time.perf_counter() - t0)


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--tokens", type=int, default=4096, help="rows: batch x context of a training step")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.model}, {args.tokens} rows, {args.threads} threads, torch {torch.__version__}")
    print(f"{'shape':14s} {'m x k x n':>20s} {'bf16 TFLOP/s':>13s} {'fp32 TFLOP/s':>13s}")
    for name, (m, k, n) in shapes(args.model, args.tokens).items():
        bf16 = flops_per_s(m, k, n, torch.bfloat16) / 1e12
        fp32 = flops_per_s(m, k, n, torch.float32) / 1e12
        print(f"{name:14s} {f'{m}x{k}x{n}':>20s} {bf16:13.2f} {fp32:13.2f}")


if __name__ == "__main__":
    main()
