"""The small random Qwen2 models the tests build: one definition of their shapes.

(A helper module rather than a fixture: tests call it with different shapes, seeds and
devices. pytest puts this folder on the path, so ``from tiny import qwen2``.)
"""

from __future__ import annotations

# Two layers, GQA (4 heads over 2 KV heads), tied embeddings: every code path of the real model.
TINY_SHAPE = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=300,
    tie_word_embeddings=True,
)
# Qwen2.5-0.5B-Instruct's shape (random weights; on the meta device it costs nothing).
QWEN25_05B_SHAPE = dict(
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    vocab_size=151936,
    tie_word_embeddings=True,
)


def qwen2(seed: int = 0, meta: bool = False, attn: str | None = None, **shape):
    """A random ``Qwen2ForCausalLM`` in eval mode: TINY_SHAPE updated with ``shape``."""
    import torch
    import transformers

    extra = {"attn_implementation": attn} if attn else {}
    cfg = transformers.Qwen2Config(**{**TINY_SHAPE, **shape}, **extra)
    torch.manual_seed(seed)
    if meta:
        with torch.device("meta"):
            return transformers.Qwen2ForCausalLM(cfg).eval()
    return transformers.Qwen2ForCausalLM(cfg).eval()
