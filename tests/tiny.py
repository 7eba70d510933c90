"""What the tests share: the small random Qwen2 models they build, a tiny-qwen2 run's
options, and the check of a one-line error.

(A helper module rather than fixtures: tests call these with different shapes, seeds and
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


# a fine-tuning run of tiny-qwen2 that takes a second: CLI flags, and the config itself
TINY_CLI = ["--model", "tiny-qwen2", "--context", "32", "--batch-size", "2", "--val-series", "2", "--quiet"]


def finetune_cfg(h5, out, **kw):
    from lvtime.config import FinetuneConfig

    base = dict(data=str(h5), model="tiny-qwen2", out=str(out), steps=2, context=32, batch_size=2, val_series=2)
    return FinetuneConfig(**{**base, **kw})


def one_line_error(result, code: int) -> str:
    """A CliRunner result that failed with ``code`` and one ``lvtime: error:`` line."""
    assert result.exit_code == code, result.output
    err = result.stderr.strip()
    assert err.startswith("lvtime: error: ") and "\n" not in err and "Traceback" not in err, err
    return err
