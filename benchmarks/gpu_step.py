"""One LoRA training step of the full Qwen2.5-0.5B shape (random weights) on a GPU.

Reports tokens/s and model-FLOPs utilisation (MFU) for the plain reference loop and
lvtime's loss path (full and numeric head), in bf16. MFU counts the estimator's
training step under the ``2mnk`` convention (matmuls only, 2mnk, real shapes, 3 x
forward) against the chip's peak.

    python benchmarks/gpu_step.py --batch 4 --context 768 [--peak 989e12]
    python benchmarks/gpu_step.py --tiny   # a CPU smoke test of the script itself
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from lvtime import lora, training
from lvtime.flops import Architecture, LoraSpec, train_step_flops

# Qwen2.5 ids of 0-9 . , ; and <|endoftext|> (the numeric head), so no tokenizer is needed.
NUMERIC_IDS = list(range(15, 25)) + [13, 11, 26, 151643]


def build(tiny: bool, device: str):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    shape = (
        dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
        if tiny
        else dict(
            hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2
        )
    )
    cfg = Qwen2Config(
        vocab_size=151936,
        tie_word_embeddings=True,
        rope_theta=1e6,
        rms_norm_eps=1e-6,
        attn_implementation="sdpa",
        **shape,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    lora.inject(model, rank=4)
    return model, cfg


def bench(model, cfg, mode: str, batch: int, context: int, steps: int, warmup: int, device: str) -> dict:
    ids = torch.randint(0, 151643, (batch, context), device=device)
    if mode == "numeric":
        ids = torch.tensor(NUMERIC_IDS[:13], device=device)[torch.randint(0, 13, (batch, context), device=device)]
    mask = torch.ones_like(ids)
    labels = ids.clone()
    head = training.LossHead(model, NUMERIC_IDS if mode == "numeric" else None)
    opt = torch.optim.AdamW(lora.lora_parameters(model), lr=1e-4)
    model.train()

    def step():
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16):
            if mode == "reference":
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            else:
                total, n = head(ids, mask, labels)
                loss = total / n
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    arch = Architecture.from_hf_config(cfg)
    head_vocab = 14 if mode == "numeric" else None
    model_flops = train_step_flops(arch, context, batch, LoraSpec(rank=4), "2mnk", head_vocab)
    full_flops = train_step_flops(arch, context, batch, LoraSpec(rank=4), "2mnk", None)
    return {
        "mode": mode,
        "batch": batch,
        "context": context,
        "s_per_step": dt,
        "tokens_per_s": batch * context / dt,
        "model_tflops_per_s": model_flops / dt / 1e12,
        # what the numeric head buys, in full-model terms: the full model's FLOPs per step time
        "full_model_equivalent_tflops_per_s": full_flops / dt / 1e12,
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[4])
    p.add_argument("--context", type=int, default=768)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--peak", type=float, default=989e12, help="bf16 dense peak FLOP/s (H100/H200 SXM datasheet)")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the model body first")
    p.add_argument("--out", help="also append JSON lines here")
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        print(torch.cuda.get_device_name(), "torch", torch.__version__)
    model, cfg = build(args.tiny, device)
    if args.compile:
        model.model.compile()
        print("torch.compile of the model body (compiled during the first warm-up step)")
    for batch in args.batch:
        for mode in ("reference", "full", "numeric"):
            r = bench(model, cfg, mode, batch, args.context, args.steps, args.warmup, device)
            r["mfu"] = r["model_tflops_per_s"] * 1e12 / args.peak
            line = (
                f"{mode:9s} batch {batch:3d} x {args.context}: {r['tokens_per_s']:9.0f} tok/s  "
                f"{r['s_per_step'] * 1e3:7.1f} ms/step  {r['model_tflops_per_s']:6.1f} TFLOP/s  "
                f"MFU {100 * r['mfu']:5.1f}%  "
                f"full-model-equivalent {r['full_model_equivalent_tflops_per_s']:6.1f} TFLOP/s"
                + (f"  peak {r['peak_mem_gb']:.1f} GB" if r["peak_mem_gb"] else "")
            )
            print(line, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
