"""The attention of one sampled decoding step over each row's own tokens, kernel by kernel.

A sampled forecast's rows each attend with 3 query heads per KV head (SmolLM2-135M: 9
heads, 3 KV heads, head size 64) over their own generated tokens, in a buffer allocated
once (a strided view). This times ways to compute that part against the machine's memory
bandwidth (a large copy): torch's CPU flash kernel (lvtime's path), batched matmuls, a
float32 cache, and torch.compile of a one-pass formulation (needs a C++ compiler).

    python benchmarks/decode_attention.py --rows 60 --lengths 400 800
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

FLASH = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def one_pass(q, k, v, scale: float):
    """Softmax attention of (r, h, g, d) queries over (r, h, L, d) keys and values, fp32 sums."""
    s = (q.float()[:, :, :, None, :] * k.float()[:, :, None, :, :]).sum(-1) * scale
    lse = s.logsumexp(-1)
    return ((s - lse[..., None]).exp()[..., None] * v.float()[:, :, None, :, :]).sum(-2), lse


def bmm(q, k, v, scale: float):
    s = torch.matmul(q, k.transpose(-1, -2)).float() * scale
    lse = s.logsumexp(-1)
    return torch.matmul((s - lse[..., None]).exp().to(v.dtype), v), lse


def flash(q, k, v, scale: float):
    return FLASH(q, k, v, scale=scale)


def timed(f, *args, n: int = 30) -> float:
    """Median seconds of ``n`` calls of ``f(*args)`` after a warm-up call (a median: other
    tenants of a virtual machine make single calls slow)."""
    f(*args)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=60, help="sequences decoded together")
    p.add_argument("--lengths", type=int, nargs="+", default=[400, 800], help="own tokens attended")
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args()
    src = torch.ones(256 * 1024 * 1024, dtype=torch.bfloat16)
    dst = torch.empty_like(src)  # written by the warm-up call: no page faults in the copies timed
    copy = 2 * src.nbytes / timed(dst.copy_, src, n=5)  # read + write
    del src, dst
    print(f"{torch.get_num_threads()} threads; memory bandwidth (a 512 MB copy): {copy / 1e9:.0f} GB/s")
    heads, group, dim, cap = 3, 3, 64, 1200
    compiled = None if args.no_compile else torch.compile(one_pass, dynamic=True)
    for length in args.lengths:
        for dtype in (torch.bfloat16, torch.float32):
            buf = [torch.randn(args.rows, heads, cap, dim, dtype=dtype) for _ in range(2)]
            k, v = (full[:, :, :length] for full in buf)
            q = torch.randn(args.rows, heads, group, dim, dtype=dtype)
            ways = {"flash (lvtime)": flash, "bmm": bmm}
            if compiled is not None and dtype == torch.bfloat16:
                ways["compiled one-pass"] = compiled
            read = 2 * k.numel() * k.element_size()
            for name, f in ways.items():
                s = timed(f, q, k, v, dim**-0.5)
                print(f"L {length:5d} {str(dtype)[6:]:9s} {name:18s} {1e3 * s:7.2f} ms  {read / s / 1e9:5.1f} GB/s")


if __name__ == "__main__":
    main()
