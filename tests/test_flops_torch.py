"""The estimator's 2mnk convention against torch's own FLOP counter on a real Qwen2."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny import QWEN25_05B_SHAPE, TINY_SHAPE, qwen2  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from lvtime import flops  # noqa: E402


@pytest.mark.parametrize(
    "shape, seq",
    [(dict(TINY_SHAPE, tie_word_embeddings=False, vocab_size=1000), 17), (QWEN25_05B_SHAPE, 64)],
)
def test_2mnk_matches_flop_counter(shape, seq):
    model = qwen2(meta=True, attn="eager", **shape)
    ids = torch.zeros((2, seq), dtype=torch.long, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(input_ids=ids)
    measured = counter.get_total_flops()
    estimate = flops.total(
        flops.forward_flops(flops.Architecture.from_hf_config(model.config), seq, 2, convention="2mnk")
    )
    assert estimate == pytest.approx(measured, rel=0.005)
