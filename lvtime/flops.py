"""Analytic FLOP estimator for decoder-only transformers (Qwen2 / Llama family). No torch.

Every spending command asks this module for its cost before it starts, and the budget
ledger records the answer. Costs are counted per component as primitive operations,
weighted by the study's rules:

* add, subtract, negate, multiply, divide: 1 FLOP; exp, log, sqrt, sin, cos: 10 FLOPs;
* an (m x n) @ (n x p) matmul: ``m * p * (2n - 1)``;
* training: 3 x the forward pass; tokenisation, embedding look-ups, the loss and the
  optimizer update: 0 (work outside the model).

Three conventions (see docs/flops.md for the derivations):

``coursework`` (default)
    The study's rules. Grouped-query attention is counted as standard multi-head
    attention (K and V projected to ``heads * head_dim``). Positional encodings are
    not computed but adding them to the embeddings is counted (``seq * hidden``).
``exact``
    The real architecture under the same rules: K/V projected to ``kv_heads *
    head_dim``, RoPE applied to q and k in every layer (``x*cos + rotate(x)*sin``:
    2 mul + 1 add per element, 1 negation per pair), the causal-mask addition and the
    max subtraction of a numerically safe softmax.
``2mnk``
    Matmuls only, ``2*m*n*k`` each, with the real shapes: what
    ``torch.utils.flop_counter.FlopCounterMode`` reports (biases, norms, softmax and
    activations are not counted). Used to check this module against the real model.

Per layer and per sequence of ``n`` query tokens attending over ``L`` keys
(``d`` hidden, ``H`` heads, ``h`` head dim, ``I`` intermediate, ``V`` vocab):

==================  ===========================================================
attn_norm, mlp_norm  RMSNorm: ``n (4d + 11)`` (square, sum, mean, +eps, sqrt,
                     divide, weight)
q/k/v/o_proj         ``matmul(n, d_in, d_out)`` + ``n d_out`` per bias
attn_scores          ``H * n L (2h - 1)``
attn_scale           ``H * n L`` (divide by sqrt(h); the root itself is a constant)
softmax              ``H * n (12L - 1)``: L exp, L-1 adds, L divisions
attn_values          ``H * n h (2L - 1)``
residual             ``2 n d``
mlp_gate, mlp_up     ``matmul(n, d, I)`` each
silu                 ``13 n I``: negate, exp, add 1, divide
gating               ``n I``
mlp_down             ``matmul(n, I, d)``
==================  ===========================================================

plus ``final_norm`` on all ``n`` positions and ``lm_head`` = ``matmul(p, d, V)`` for
the ``p`` positions whose logits are computed (all of them in training, the last one
in generation). LoRA on a module ``d_in -> d_out`` at rank ``r`` adds
``matmul(n, d_in, r) + matmul(n, r, d_out)`` plus ``n d_out`` for the scaling and
``n d_out`` for the addition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lvtime.config import CONVENTIONS, DEFAULT_TARGETS  # noqa: F401 - re-exported

BUDGET = 1e17
TRAIN_MULTIPLIER = 3  # backward ~ 2x forward, by the study's rule
RMSNORM_EXTRA = 11  # per vector: mean division + eps addition + sqrt (10)
SILU_PER_ELEMENT = 13  # negate + exp (10) + add + divide
SOFTMAX_PER_SCORE = 12  # exp (10) + add into the row sum + divide (minus one add per row)
ROPE_PER_ELEMENT = 3.5  # 2 mul + 1 add, and a negation for half of the elements


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class Architecture:
    """What the estimator needs to know about a model. A plain dataclass, not a pydantic
    model: building one at import is a tenth of ``lvtime flops``'s start-up."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    name: str = "custom"  # label shown in tables
    tie_embeddings: bool = True  # the output head shares the embedding matrix
    qkv_bias: bool = False  # q/k/v projections have biases (Qwen2: yes)
    o_bias: bool = False
    mlp_bias: bool = False
    max_positions: int | None = None  # longest sequence the model takes (None: unknown)

    def __post_init__(self) -> None:
        sizes = [
            "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "vocab_size",
        ]  # fmt: skip
        if self.max_positions is not None:
            sizes.append("max_positions")
        for name in sizes:
            if not _positive_int(getattr(self, name)):
                raise ValueError(f"{name} must be a whole number > 0, got {getattr(self, name)!r}")
        for name in ("tie_embeddings", "qkv_bias", "o_bias", "mlp_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.name, str):
            raise ValueError(f"name must be text, got {self.name!r}")

    @classmethod
    def from_hf_config(cls, config: Any, name: str | None = None) -> Architecture:
        """From a transformers config object, a config dict, or a ``config.json`` path."""
        if isinstance(config, str | Path):
            path = Path(config)
            if path.is_dir():
                path = path / "config.json"
            config = json.loads(path.read_text())
        if not isinstance(config, dict):
            config = config.to_dict()
        c = config.get("text_config", config)
        heads = c["num_attention_heads"]
        qwen2 = c.get("model_type") == "qwen2"
        attention_bias = c.get("attention_bias", False)
        return cls(
            name=name or c.get("_name_or_path") or c.get("model_type", "custom"),
            hidden_size=c["hidden_size"],
            intermediate_size=c["intermediate_size"],
            num_layers=c["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=c.get("num_key_value_heads") or heads,
            head_dim=c.get("head_dim") or c["hidden_size"] // heads,
            vocab_size=c["vocab_size"],
            tie_embeddings=c.get("tie_word_embeddings", True),
            qkv_bias=qwen2 or attention_bias,  # Qwen2 hard-codes q/k/v biases
            o_bias=attention_bias and not qwen2,
            mlp_bias=c.get("mlp_bias", False),
            max_positions=c.get("max_position_embeddings"),
        )

    def n_params(self) -> int:
        """Parameter count (embeddings counted once when tied)."""
        d, i, q = self.hidden_size, self.intermediate_size, self.num_heads * self.head_dim
        kv = self.num_kv_heads * self.head_dim
        attn = d * q + 2 * d * kv + q * d
        attn += (q + 2 * kv) * self.qkv_bias + d * self.o_bias
        mlp = 3 * d * i + (2 * i + d) * self.mlp_bias
        layer = attn + mlp + 2 * d
        emb = self.vocab_size * d * (1 if self.tie_embeddings else 2)
        return self.num_layers * layer + emb + d


PRESETS: dict[str, Architecture] = {
    "qwen2.5-0.5b-instruct": Architecture(
        name="Qwen2.5-0.5B-Instruct",
        hidden_size=896,
        intermediate_size=4864,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        head_dim=64,
        vocab_size=151_936,
        tie_embeddings=True,
        qkv_bias=True,
        max_positions=32_768,
    ),
    "smollm2-135m-instruct": Architecture(
        name="SmolLM2-135M-Instruct",
        hidden_size=576,
        intermediate_size=1536,
        num_layers=30,
        num_heads=9,
        num_kv_heads=3,
        head_dim=64,
        vocab_size=49_152,
        tie_embeddings=True,
        max_positions=8_192,
    ),
    # Random weights, Qwen2.5 vocabulary: smoke tests and dry runs (lvtime.models builds it).
    "tiny-qwen2": Architecture(
        name="tiny-qwen2",
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        vocab_size=151_936,
        tie_embeddings=True,
        qkv_bias=True,
        max_positions=4_096,
    ),
}
PRESET_ALIASES = {"qwen/qwen2.5-0.5b-instruct": "qwen2.5-0.5b-instruct"}


def resolve_architecture(model: str) -> Architecture:
    """A preset name (or the Qwen hub id), a ``config.json`` or a model folder."""
    from lvtime.errors import UsageError

    if not model.strip():
        raise UsageError(f"model: empty; use a preset ({', '.join(PRESETS)}), a config.json or a model folder")
    key = PRESET_ALIASES.get(model.lower(), model.lower())
    if key in PRESETS:
        return PRESETS[key]
    path = Path(model)
    if path.exists():
        try:
            return Architecture.from_hf_config(path, name=path.name)
        except (OSError, KeyError, ValueError) as exc:
            raise UsageError(f"{model}: not a usable Hugging Face config ({exc})") from None
    raise UsageError(f"unknown model {model!r}: use a preset ({', '.join(PRESETS)}), a config.json or a model folder")


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapters as the estimator sees them."""

    rank: int = 4
    targets: tuple[str, ...] = DEFAULT_TARGETS

    def __post_init__(self) -> None:
        if not _positive_int(self.rank):
            raise ValueError(f"rank must be a whole number > 0, got {self.rank!r}")
        object.__setattr__(self, "targets", tuple(self.targets))


def pct(part: float | None, whole: float) -> str:
    """A share in percent, readable at any size: ``24.2%``, ``0.0104%``, ``<0.0001%``."""
    if part is None or not whole:
        return "-"
    share = 100.0 * part / whole
    return "<0.0001%" if 0 < abs(share) < 1e-4 else f"{share:.3g}%"


def flops_str(x: float) -> str:
    """FLOPs as the study writes them: ``4.22e15``."""
    return f"{x:.2e}".replace("e+", "e")


def _check(convention: str) -> None:
    if convention not in CONVENTIONS:
        from lvtime.errors import UsageError

        raise UsageError(f"unknown convention {convention!r} (use {', '.join(CONVENTIONS)})")


def matmul(m: float, n: float, p: float, convention: str = "coursework") -> float:
    """(m x n) @ (n x p): ``m p (2n - 1)``, or ``2 m n p`` under ``2mnk``."""
    return 2 * m * n * p if convention == "2mnk" else m * p * (2 * n - 1)


def module_shapes(arch: Architecture, convention: str = "coursework") -> dict[str, tuple[int, int]]:
    """(in, out) features of each linear module in a layer, as the convention sees it."""
    d, q = arch.hidden_size, arch.num_heads * arch.head_dim
    kv = q if convention == "coursework" else arch.num_kv_heads * arch.head_dim
    i = arch.intermediate_size
    return {
        "q_proj": (d, q),
        "k_proj": (d, kv),
        "v_proj": (d, kv),
        "o_proj": (q, d),
        "gate_proj": (d, i),
        "up_proj": (d, i),
        "down_proj": (i, d),
    }


def forward_flops(
    arch: Architecture,
    seq: int,
    batch: int = 1,
    *,
    context: float | None = None,
    head_positions: int | None = None,
    lora: LoraSpec | None = None,
    convention: str = "coursework",
    head_vocab: int | None = None,
) -> dict[str, float]:
    """FLOPs of one forward pass of ``batch`` sequences of ``seq`` new tokens, per component.

    Args:
        seq: query tokens per sequence.
        context: keys each query attends over (default ``seq``: a full causal pass,
            counted as the whole ``seq x seq`` score matrix). A KV-cached decoding step
            is ``seq=1, context=cache length``.
        head_positions: positions per sequence whose logits are computed (default all).
        lora: adapters whose extra work is counted (None: base model only).
        head_vocab: output-head width when restricted to a sub-vocabulary
            (``--head numeric``); default the full vocabulary.

    Returns:
        Component name -> FLOPs, summed over layers and the batch. Zero entries are kept
        so that tables always show the same rows.
    """
    _check(convention)
    n = seq
    hp = seq if head_positions is None else head_positions
    shapes = module_shapes(arch, convention)
    per_layer = _layer_flops(arch, n, seq if context is None else context, convention, shapes)
    norm = per_layer["attn_norm"]
    if lora is not None:
        per_layer.update(_lora_flops(lora, shapes, n, convention))
    out = {"position_add": n * arch.hidden_size if convention == "coursework" else 0}
    out.update({k: v * arch.num_layers for k, v in per_layer.items()})
    out["final_norm"] = norm
    out["lm_head"] = matmul(hp, arch.hidden_size, head_vocab or arch.vocab_size, convention)
    return {k: float(v) * batch for k, v in out.items()}


def _layer_flops(arch: Architecture, n: int, L: float, convention: str, shapes: dict) -> dict[str, float]:
    """One decoder layer's FLOPs per component, for ``n`` queries over ``L`` keys."""
    d, H, h, i = arch.hidden_size, arch.num_heads, arch.head_dim, arch.intermediate_size
    rules = convention != "2mnk"  # count non-matmul arithmetic at all?
    exact = convention == "exact"
    mm = lambda a, b, c: matmul(a, b, c, convention)  # noqa: E731

    def proj(name: str, bias: bool) -> float:
        fin, fout = shapes[name]
        return mm(n, fin, fout) + (n * fout if bias and rules else 0)

    norm = n * (4 * d + RMSNORM_EXTRA) if rules else 0
    return {
        "attn_norm": norm,
        "q_proj": proj("q_proj", arch.qkv_bias),
        "k_proj": proj("k_proj", arch.qkv_bias),
        "v_proj": proj("v_proj", arch.qkv_bias),
        "rope": ROPE_PER_ELEMENT * n * (H + arch.num_kv_heads) * h if exact else 0,
        "attn_scores": H * mm(n, h, L),
        "attn_scale": H * n * L if rules else 0,
        "attn_mask": H * n * L if exact else 0,
        "softmax": H * n * ((SOFTMAX_PER_SCORE + exact) * L - 1) if rules else 0,  # exact: max-subtract
        "attn_values": H * mm(n, L, h),
        "o_proj": proj("o_proj", arch.o_bias),
        "mlp_norm": norm,
        "mlp_gate": proj("gate_proj", arch.mlp_bias),
        "mlp_up": proj("up_proj", arch.mlp_bias),
        "silu": SILU_PER_ELEMENT * n * i if rules else 0,
        "gating": n * i if rules else 0,
        "mlp_down": proj("down_proj", arch.mlp_bias),
        "residual": 2 * n * d if rules else 0,
    }


def _lora_flops(lora: LoraSpec, shapes: dict, n: int, convention: str) -> dict[str, float]:
    """Per layer: the adapters' down and up projections, then scaling by alpha/r and
    adding to the base output (arithmetic the ``2mnk`` convention leaves out)."""
    down = up = extra = 0.0
    for target in lora.targets:
        if target not in shapes:
            from lvtime.errors import UsageError

            raise UsageError(f"unknown LoRA target {target!r} (use {', '.join(shapes)})")
        fin, fout = shapes[target]
        down += matmul(n, fin, lora.rank, convention)
        up += matmul(n, lora.rank, fout, convention)
        extra += 2 * n * fout if convention != "2mnk" else 0
    return {"lora_down": down, "lora_up": up, "lora_scale_add": extra}


def total(components: dict[str, float]) -> float:
    return float(sum(components.values()))


def train_step_flops(
    arch: Architecture,
    seq: int,
    batch: int,
    lora: LoraSpec | None = None,
    convention: str = "coursework",
    head_vocab: int | None = None,
) -> float:
    """One optimizer step over ``batch`` windows of ``seq`` tokens: 3 x forward."""
    fwd = forward_flops(arch, seq, batch, lora=lora, convention=convention, head_vocab=head_vocab)
    return TRAIN_MULTIPLIER * total(fwd)


def generate_flops(
    arch: Architecture,
    prompt_len: int,
    new_tokens: int,
    batch: int = 1,
    convention: str = "coursework",
    head_vocab: int | None = None,
    lora: LoraSpec | None = None,
    samples: int = 1,
) -> dict[str, float]:
    """Prefill of ``prompt_len`` tokens, then KV-cached decoding to ``new_tokens`` tokens.

    The prefill computes logits for its last position only and yields the first new
    token; each of the remaining ``new_tokens - 1`` tokens is fed back as a one-token
    pass attending over the cache (``prompt_len + k`` keys for the k-th). With
    ``samples`` > 1 each of the ``batch`` prompts is prefilled once and its cache
    expanded to ``samples`` rows, which then decode. Returns ``{"prefill", "decode", "total"}``.
    """
    if new_tokens < 0 or prompt_len < 1:
        from lvtime.errors import UsageError

        raise UsageError("generation needs a prompt of >= 1 token and >= 0 new tokens")
    kw = dict(convention=convention, head_vocab=head_vocab, lora=lora)
    prefill = total(forward_flops(arch, prompt_len, batch, head_positions=1, **kw))
    steps = max(new_tokens - 1, 0)
    decode = 0.0
    if steps:
        # A one-token pass costs a + b*L (affine in the cache length L), so the sum
        # over L = P+1 .. P+steps equals steps x the cost at the mean length.
        mean_len = prompt_len + (steps + 1) / 2
        decode = steps * total(forward_flops(arch, 1, batch * samples, context=mean_len, **kw))
    return {"prefill": prefill, "decode": decode, "total": prefill + decode}
