"""The estimator's 2mnk convention against torch's own FLOP counter on a real Qwen2."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from lvtime import flops  # noqa: E402


def qwen2(**kw):
    cfg = transformers.Qwen2Config(attn_implementation="eager", **kw)
    with torch.device("meta"):
        return transformers.Qwen2ForCausalLM(cfg).eval(), cfg


@pytest.mark.parametrize(
    "shape, seq",
    [
        (
            dict(
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                vocab_size=1000,
            ),
            17,
        ),
        (
            dict(
                hidden_size=896,
                intermediate_size=4864,
                num_hidden_layers=24,
                num_attention_heads=14,
                num_key_value_heads=2,
                vocab_size=151936,
                tie_word_embeddings=True,
            ),
            64,
        ),
    ],
)
def test_2mnk_matches_flop_counter(shape, seq):
    model, cfg = qwen2(**shape)
    ids = torch.zeros((2, seq), dtype=torch.long, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(input_ids=ids)
    measured = counter.get_total_flops()
    estimate = flops.total(flops.forward_flops(flops.Architecture.from_hf_config(cfg), seq, 2, convention="2mnk"))
    assert estimate == pytest.approx(measured, rel=0.005)
