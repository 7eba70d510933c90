"""LoRA injection, training, merging and the PEFT adapter format on a tiny random Qwen2."""

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny import QWEN25_05B_SHAPE, qwen2  # noqa: E402

from lvtime import lora  # noqa: E402
from lvtime.errors import ModelError  # noqa: E402


def tiny(seed=0):
    return qwen2(seed)


IDS = torch.tensor([[5, 17, 3, 99, 42, 7], [1, 2, 3, 4, 5, 6]])


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


def train_a_little(model, steps=3):
    opt = torch.optim.AdamW(lora.lora_parameters(model), lr=1e-2)
    for _ in range(steps):
        loss = model(input_ids=IDS, labels=IDS).loss
        loss.backward()
        opt.step()
        opt.zero_grad()


def test_fresh_adapter_changes_no_logit():
    model = tiny()
    before = logits(model)
    info = lora.inject(model, rank=4)
    assert len(info.modules) == 4 and all(m.endswith(("q_proj", "v_proj")) for m in info.modules)
    assert torch.equal(logits(model), before)


def test_only_lora_parameters_change_when_training():
    model = tiny()
    lora.inject(model, rank=4)
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_a_little(model)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, snapshot[n])}
    assert changed and all(".lora_A." in n or ".lora_B." in n for n in changed)
    assert any(".lora_B." in n for n in changed)


def test_trainable_summary_matches_qwen_figure():
    # Qwen2.5-0.5B, rank 4 on q/v: 24 layers x (q: 4*(896+896) + v: 4*(896+128)) = 270,336
    model = qwen2(meta=True, **QWEN25_05B_SHAPE)
    lora.inject(model, rank=4)
    s = lora.trainable_summary(model)
    assert s["trainable"] == 270_336 and s["total"] == 494_032_768 + 270_336


def test_merge_unmerge_agree():
    model = tiny()
    lora.inject(model, rank=4, alpha=8)
    train_a_little(model)
    unmerged = logits(model)
    lora.merge(model)
    assert all(m.merged for m in lora.lora_modules(model).values())
    torch.testing.assert_close(logits(model), unmerged, atol=1e-5, rtol=0)
    lora.unmerge(model)
    torch.testing.assert_close(logits(model), unmerged, atol=1e-5, rtol=0)


def test_merge_refuses_non_finite():
    model = tiny()
    lora.inject(model, rank=2)
    module = next(iter(lora.lora_modules(model).values()))
    with torch.no_grad():
        module.lora_B.weight.fill_(float("inf"))
    with pytest.raises(ModelError, match="not be finite"):
        module.merge()
    assert not module.merged


def test_save_load_round_trip_is_exact(tmp_path):
    model = tiny()
    lora.inject(model, rank=4)
    train_a_little(model)
    expected = logits(model)
    lora.save_adapter(model, tmp_path / "a", base_model="tiny")
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["task_type"] == "CAUSAL_LM"
    assert config["target_modules"] == ["q_proj", "v_proj"] and config["bias"] == "none"
    fresh = tiny()
    lora.load_adapter(fresh, tmp_path / "a")
    assert torch.equal(logits(fresh), expected)


def test_load_checks_the_base_model(tmp_path):
    model = tiny()
    lora.inject(model, rank=4)
    lora.save_adapter(model, tmp_path / "a")
    other = qwen2(hidden_size=48)
    with pytest.raises(ModelError, match="another base"):
        lora.load_adapter(other, tmp_path / "a")
    deeper = qwen2(num_hidden_layers=3)
    with pytest.raises(ModelError, match="does not match"):
        lora.load_adapter(deeper, tmp_path / "a")
    with pytest.raises(ModelError, match="not an adapter folder"):
        lora.load_adapter(tiny(), tmp_path)


def test_peft_loads_lvtime_adapters(tmp_path):
    peft = pytest.importorskip("peft")
    model = tiny()
    lora.inject(model, rank=4, alpha=8)
    train_a_little(model)
    expected = logits(model)
    lora.save_adapter(model, tmp_path / "a")
    peft_model = peft.PeftModel.from_pretrained(tiny(), tmp_path / "a").eval()
    torch.testing.assert_close(logits(peft_model), expected, atol=1e-5, rtol=1e-5)


def test_lvtime_loads_peft_adapters(tmp_path):
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(
        r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False
    )
    peft_model = peft.get_peft_model(tiny(), config).eval()
    expected = logits(peft_model)
    peft_model.save_pretrained(tmp_path / "p")
    model = tiny()
    info = lora.load_adapter(model, tmp_path / "p")
    assert info.rank == 4 and info.alpha == 16
    torch.testing.assert_close(logits(model), expected, atol=1e-5, rtol=1e-5)
