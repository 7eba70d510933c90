"""The estimator against hand-derived counts (1 layer, seq 3) and known model figures."""

from dataclasses import replace

import pytest

from lvtime import flops
from lvtime.errors import UsageError

# d=4, I=6, 1 layer, 2 heads of dim 2, 1 KV head, vocab 5, q/k/v biases.
TINY = flops.Architecture(
    hidden_size=4,
    intermediate_size=6,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    head_dim=2,
    vocab_size=5,
    qkv_bias=True,
)

COURSEWORK = {
    "position_add": 3 * 4,  # n d
    "attn_norm": 3 * (4 * 4 + 11),  # n (4d + 11)
    "q_proj": 3 * 4 * 7 + 3 * 4,  # m p (2n-1) + bias
    "k_proj": 3 * 4 * 7 + 3 * 4,  # GQA counted as MHA: out = heads*head_dim = 4
    "v_proj": 3 * 4 * 7 + 3 * 4,
    "rope": 0,
    "attn_scores": 2 * 3 * 3 * 3,  # H * n L (2h-1)
    "attn_scale": 2 * 3 * 3,  # H n L
    "attn_mask": 0,
    "softmax": 2 * 3 * (12 * 3 - 1),  # H n (10L exp + (L-1) adds + L divs)
    "attn_values": 2 * 3 * 2 * 5,  # H * n h (2L-1)
    "o_proj": 3 * 4 * 7,
    "mlp_norm": 3 * 27,
    "mlp_gate": 3 * 6 * 7,
    "mlp_up": 3 * 6 * 7,
    "silu": 13 * 3 * 6,
    "gating": 3 * 6,
    "mlp_down": 3 * 4 * 11,
    "residual": 2 * 3 * 4,
    "final_norm": 3 * 27,
    "lm_head": 3 * 5 * 7,
}


def test_coursework_by_hand():
    got = flops.forward_flops(TINY, 3)
    assert got == {k: float(v) for k, v in COURSEWORK.items()}
    assert flops.total(got) == 1734


def test_exact_by_hand():
    got = flops.forward_flops(TINY, 3, convention="exact")
    expected = dict(COURSEWORK)
    expected.update(
        position_add=0,
        k_proj=3 * 2 * 7 + 3 * 2,  # real shape: 1 KV head x 2 = 2 outputs
        v_proj=3 * 2 * 7 + 3 * 2,
        rope=3.5 * 3 * (2 + 1) * 2,  # q and k elements, 2 mul + 1 add + 1/2 neg
        attn_mask=2 * 3 * 3,
        softmax=2 * 3 * (13 * 3 - 1),  # plus the max subtraction
    )
    assert got == {k: float(v) for k, v in expected.items()}


def test_2mnk_by_hand():
    got = flops.forward_flops(TINY, 3, convention="2mnk")
    nonzero = {k: v for k, v in got.items() if v}
    assert nonzero == {
        "q_proj": 2 * 3 * 4 * 4,
        "k_proj": 2 * 3 * 4 * 2,
        "v_proj": 2 * 3 * 4 * 2,
        "attn_scores": 2 * 2 * 3 * 2 * 3,
        "attn_values": 2 * 2 * 3 * 3 * 2,
        "o_proj": 2 * 3 * 4 * 4,
        "mlp_gate": 2 * 3 * 4 * 6,
        "mlp_up": 2 * 3 * 4 * 6,
        "mlp_down": 2 * 3 * 6 * 4,
        "lm_head": 2 * 3 * 4 * 5,
    }


def test_lora_by_hand():
    got = flops.forward_flops(TINY, 3, lora=flops.LoraSpec(rank=1, targets=["q_proj", "v_proj"]))
    assert got["lora_down"] == 2 * (3 * 1 * 7)  # 2 modules x matmul(3, 4, 1)
    assert got["lora_up"] == 2 * (3 * 4 * 1)  # 2 modules x matmul(3, 1, 4)
    assert got["lora_scale_add"] == 2 * 2 * 3 * 4  # scale + add on each output element
    base = flops.forward_flops(TINY, 3)
    assert flops.total(got) - flops.total(base) == 42 + 24 + 48
    with pytest.raises(UsageError, match="unknown LoRA target"):
        flops.forward_flops(TINY, 3, lora=flops.LoraSpec(rank=1, targets=["nope"]))


def test_batch_layers_and_head_scale_linearly():
    one = flops.total(flops.forward_flops(TINY, 3))
    assert flops.total(flops.forward_flops(TINY, 3, 5)) == 5 * one
    two_layers = replace(TINY, num_layers=2)
    per_layer = one - COURSEWORK["position_add"] - COURSEWORK["final_norm"] - COURSEWORK["lm_head"]
    assert flops.total(flops.forward_flops(two_layers, 3)) == one + per_layer
    numeric = flops.forward_flops(TINY, 3, head_vocab=2)
    assert numeric["lm_head"] == 3 * 2 * 7


def test_generate_is_prefill_plus_cached_steps():
    got = flops.generate_flops(TINY, prompt_len=2, new_tokens=3)
    prefill = flops.total(flops.forward_flops(TINY, 2, head_positions=1))
    steps = flops.total(flops.forward_flops(TINY, 1, context=3)) + flops.total(flops.forward_flops(TINY, 1, context=4))
    assert got["prefill"] == prefill
    assert got["decode"] == pytest.approx(steps, rel=1e-12)
    assert flops.generate_flops(TINY, 2, 1)["decode"] == 0


def test_train_and_run():
    fwd = flops.total(flops.forward_flops(TINY, 3, 2))
    assert flops.train_step_flops(TINY, 3, 2) == 3 * fwd


def test_qwen_preset_params_and_the_studys_step():
    qwen = flops.PRESETS["qwen2.5-0.5b-instruct"]
    assert qwen.n_params() == 494_032_768
    step = flops.train_step_flops(qwen, 512, 4, flops.LoraSpec(rank=4))
    assert step == pytest.approx(6.8e12, rel=0.02)


def test_from_hf_config(tmp_path):
    import json

    cfg = {
        "model_type": "qwen2",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
        "max_position_embeddings": 32768,
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    arch = flops.resolve_architecture(str(tmp_path / "config.json"))
    assert replace(arch, name="") == replace(flops.PRESETS["qwen2.5-0.5b-instruct"], name="")
    assert flops.resolve_architecture("Qwen/Qwen2.5-0.5B-Instruct").name == "Qwen2.5-0.5B-Instruct"
    with pytest.raises(UsageError, match="unknown model"):
        flops.resolve_architecture("no-such-model")


@pytest.mark.parametrize(
    "bad, named",
    [({"hidden_size": 0}, "hidden_size"), ({"num_hidden_layers": "24"}, "num_layers"),
     ({"tie_word_embeddings": None}, "tie_embeddings"), ({"max_position_embeddings": -1}, "max_positions")],
)  # fmt: skip
def test_a_config_with_impossible_sizes_is_refused_naming_the_field(tmp_path, bad, named):
    import json

    cfg = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 4, "vocab_size": 100, **bad}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match=f"not a usable Hugging Face config.*{named}"):
        flops.resolve_architecture(str(tmp_path / "config.json"))


def test_lora_spec_refuses_a_rank_below_one():
    with pytest.raises(ValueError, match="rank"):
        flops.LoraSpec(rank=0)
