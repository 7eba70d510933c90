"""Constrained batched forecasting on tiny-qwen2 (random weights)."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lvtime import generation, llmtime, reference_table, simulation
from lvtime.errors import TokenizerError
from lvtime.flops import PRESETS
from lvtime.forecast_run import ForecastConfig, run
from lvtime.ledger import Ledger
from lvtime.models import load_model


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-qwen2")


@pytest.fixture(scope="module")
def series():
    return simulation.simulate(n=6, points=30, seed=2).trajectories


def fc(tiny, series, **kw):
    args = dict(history=20, horizon=5, batch_size=4)
    args.update(kw)
    return generation.forecast(tiny.model, tiny.tokenizer, tiny.architecture, series, np.arange(len(series)), **args)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(0, 3), st.integers(1, 3), st.data())
def test_grammar_only_allows_valid_llmtime(horizon, decimals, int_digits, draw):
    g = generation.Grammar(1, horizon, decimals, int_digits, "cpu")
    cols = []
    for _ in range(generation.max_new_tokens(horizon, decimals, int_digits) + 1):
        allowed = [i for i in range(14) if g.allowed()[0, i]]
        assert allowed
        c = draw.draw(st.sampled_from(allowed))
        cols.append(c)
        g.advance(torch.tensor([c]))
        if bool(g.done.all()):
            break
    assert bool(g.done.all()), "the grammar always finishes within max_new_tokens"
    text = generation.columns_to_text(cols)
    d = llmtime.decode(text, decimals=decimals)
    assert d.ok and len(d.steps) == horizon, text


def test_every_forecast_parses_to_the_horizon(tiny, series):
    r = fc(tiny, series, horizon=7, decimals=1)
    assert r.parse_failures == 0
    assert r.forecast.shape == (6, 7, 2) and np.isfinite(r.forecast).all()
    for (text,) in r.texts:
        assert len(llmtime.decode(text, decimals=1).steps) == 7


def test_batched_equals_one_at_a_time(tiny, series):
    batched = fc(tiny, series, batch_size=6)
    single = fc(tiny, series, batch_size=1)
    assert batched.texts == single.texts


def test_alpha_and_forecast_use_the_history_only(tiny, series):
    changed = series.copy()
    changed[:, 20:] *= 7.0
    a, b = fc(tiny, series), fc(tiny, changed)
    np.testing.assert_array_equal(a.alphas, b.alphas)
    assert a.texts == b.texts
    np.testing.assert_allclose(a.alphas, llmtime.compute_alpha(series[:, :20]))


def test_sampling_is_reproducible_with_a_seed(tiny, series):
    a = fc(tiny, series, num_samples=3, temperature=1.0, top_p=0.9, seed=5)
    b = fc(tiny, series, num_samples=3, temperature=1.0, top_p=0.9, seed=5)
    c = fc(tiny, series, num_samples=3, temperature=1.0, top_p=0.9, seed=6)
    assert a.texts == b.texts and a.texts != c.texts
    assert a.samples.shape == (6, 3, 5, 2)
    assert (a.low <= a.forecast + 1e-12).all() and (a.forecast <= a.high + 1e-12).all()


def test_cost_matches_torch_flop_counter(series):
    from torch.utils.flop_counter import FlopCounterMode

    eager = load_model("tiny-qwen2")  # FlopCounterMode has no formula for CPU SDPA kernels
    eager.model.set_attn_implementation("eager")
    counter = FlopCounterMode(display=False)
    with counter:
        r = fc(eager, series, convention="2mnk")
    assert r.flops == pytest.approx(counter.get_total_flops(), rel=0.01)


def test_upper_bound_is_exact_when_every_number_is_full_width(tiny, series):
    r = fc(tiny, series, int_digits=1)
    prompts, _ = generation.prompts_for(series[:, :20], tiny.tokenizer, 2)
    bound = generation.estimate(PRESETS["tiny-qwen2"], [len(p) for p in prompts], 5, 2, 1, 4)
    assert r.flops == pytest.approx(bound)  # one integer digit: every step has the same length


def test_refuses_tokenizers_that_merge_digits():
    class Merging:
        eos_token_id = 0

        def encode(self, text, add_special_tokens=False):
            return [1] if len(text) == 1 else [1] * (len(text) // 2)

    with pytest.raises(TokenizerError, match="single digits"):
        generation.Vocabulary.from_tokenizer(Merging())


def test_run_writes_results_and_ledger(tmp_path, small_h5):
    s = ForecastConfig(
        data=str(small_h5),
        model="tiny-qwen2",
        history=20,
        horizon=5,
        split="val",
        out=str(tmp_path / "out"),
        plot_series=1,
    )
    report = run(s)
    (entry,) = Ledger().read().entries
    assert entry.kind == "baseline" and entry.status == "completed"
    assert entry.spent_flops == report["flops"] <= entry.estimated_flops
    out = tmp_path / "out"
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["n_series"] == 4 and doc["parse_failures"] == 0
    assert set(doc["metrics"]) == {"model", *reference_table.available()}
    assert doc["gap"]["model"] > 0 and reference_table.is_naive(doc["gap"]["best_reference"])
    assert sum(doc["references"][reference_table.LIMIT]["models"].values()) == 4
    npz = np.load(out / "forecasts.npz")
    by_horizon = doc["mae_by_horizon"]  # the saved forecasts, scored per step range
    assert by_horizon["steps"] == ["1", "2", "3", "4", "5"] and set(by_horizon) - {"steps"} == set(doc["metrics"])
    step3 = np.median(np.abs(npz["forecast"] - npz["truth"])[:, 2, 0])
    assert by_horizon["model"]["prey"][2] == pytest.approx(step3)
    assert npz["forecast"].shape == (4, 5, 2) and npz["history"].shape == (4, 20, 2)
    assert npz["reference_ode"].shape == (4, 5, 2)
    forecasters = 1 + len(reference_table.available())  # the model and every reference
    assert len((out / "per_series.csv").read_text().splitlines()) == 1 + 4 * forecasters * len(("prey", "predator"))
    pytest.importorskip("matplotlib")
    assert (out / "summary.png").exists() and len(list(out.glob("series-*.png"))) == 1


def test_expanded_cache_gives_the_samples_of_separate_prefills(tiny, series):
    prompts, _ = generation.prompts_for(series[:2, :20], tiny.tokenizer, 2)
    vocab = generation.Vocabulary.from_tokenizer(tiny.tokenizer)
    kw = dict(horizon=4, temperature=1.0, top_p=0.9, pad_id=0)
    gen = torch.Generator().manual_seed(3)
    expanded, _, _ = generation.generate_batch(tiny.model, prompts, vocab, generator=gen, samples=3, **kw)
    gen = torch.Generator().manual_seed(3)
    repeated = [p for p in prompts for _ in range(3)]
    separate, _, _ = generation.generate_batch(tiny.model, repeated, vocab, generator=gen, **kw)
    assert expanded == separate
    assert len({tuple(s) for s in expanded}) > 2  # the samples do differ


def test_sampled_cost_is_exact_with_one_prefill_per_series(series, monkeypatch):
    from torch.utils.flop_counter import FlopCounterMode

    from lvtime import kvcache

    eager = load_model("tiny-qwen2")
    eager.model.set_attn_implementation("eager")  # prefill as matmuls, which FlopCounterMode counts
    # and decoding with the shared prompt through its portable path (matmuls too)
    monkeypatch.setattr(kvcache, "_cpu_kernel", lambda: None)
    shared, real = [], kvcache.shared_prompt
    monkeypatch.setattr(kvcache, "shared_prompt", lambda *a: shared.append(1) or real(*a))
    counter = FlopCounterMode(display=False)
    with counter:
        r = fc(eager, series, convention="2mnk", num_samples=3, temperature=1.0, batch_size=6)
    assert shared, "the samples shared their prompt's cache"
    assert r.flops == pytest.approx(counter.get_total_flops(), rel=0.01)
    prompts, _ = generation.prompts_for(series[:, :20], eager.tokenizer, 2)
    separate = generation.estimate(eager.architecture, [len(p) for p in prompts] * 3, 5, 2, 2, 6, 1, "2mnk")
    shared = generation.estimate(eager.architecture, [len(p) for p in prompts], 5, 2, 2, 6, 3, "2mnk")
    assert shared < separate  # the prompt is prefilled once per series, not once per sample


def test_preallocated_cache_decodes_exactly_like_the_growing_one(tiny, series, monkeypatch):
    from lvtime import kvcache

    converted = []
    real = kvcache.preallocate
    monkeypatch.setattr(kvcache, "preallocate", lambda *a, **k: converted.append(real(*a, **k)) or converted[-1])
    caches = ("dynamic", "preallocated", "shared")
    greedy = {c: fc(tiny, series, horizon=6, kv_cache=c).texts for c in caches}
    sampled = {c: fc(tiny, series, horizon=4, num_samples=3, temperature=1.0, seed=5, kv_cache=c).texts for c in caches}
    assert converted and all(converted), "the installed transformers takes the preallocated path"
    assert greedy["dynamic"] == greedy["preallocated"] == greedy["shared"]
    assert sampled["dynamic"] == sampled["preallocated"] == sampled["shared"]


def test_preallocate_leaves_a_cache_it_does_not_know_unchanged():
    from lvtime import kvcache

    class Legacy:
        key_cache = [torch.zeros(1, 1, 2, 4)]

    legacy = Legacy()
    assert kvcache.preallocate(legacy, 5) is False
    assert legacy.key_cache[0].shape == (1, 1, 2, 4)


@pytest.mark.parametrize("device_path", ["cpu kernel", "portable"])
def test_shared_prompt_attention_equals_attention_over_the_repeated_prompt(device_path, monkeypatch):
    from types import SimpleNamespace

    from lvtime import kvcache

    torch.manual_seed(0)
    b, k, kv_heads, group, prompt, own, dim = 2, 3, 2, 3, 7, 4, 8
    keys, values = torch.randn(b, kv_heads, prompt, dim), torch.randn(b, kv_heads, prompt, dim)
    mask = torch.ones(b, prompt, dtype=torch.long)
    mask[0, :3] = 0  # left padding of the shorter prompt
    layer = SimpleNamespace(samples=k, prompt_keys=keys, prompt_values=values)
    layer.prompt_mask = torch.zeros(b, prompt).masked_fill(mask == 0, torch.finfo(torch.float32).min)[:, None, None]
    own_k, own_v = torch.randn(b * k, kv_heads, own, dim), torch.randn(b * k, kv_heads, own, dim)
    query = torch.randn(b * k, kv_heads * group, 1, dim)
    if device_path == "portable":
        monkeypatch.setattr(kvcache, "_cpu_kernel", lambda: None)
    token = kvcache._active_cache.set(SimpleNamespace(layers=[layer]))
    try:
        out, _ = kvcache._shared_prompt_attention(SimpleNamespace(layer_idx=0), query, own_k, own_v, None, 0.3)
    finally:
        kvcache._active_cache.reset(token)
    # reference: every sample's row holds the whole prompt, heads repeated, one softmax
    full_k = torch.cat([keys.repeat_interleave(k, 0), own_k], 2).repeat_interleave(group, 1)
    full_v = torch.cat([values.repeat_interleave(k, 0), own_v], 2).repeat_interleave(group, 1)
    allowed = torch.cat([mask.repeat_interleave(k, 0), torch.ones(b * k, own, dtype=torch.long)], 1).bool()
    ref = torch.nn.functional.scaled_dot_product_attention(
        query, full_k, full_v, attn_mask=allowed[:, None, None], scale=0.3
    )
    assert torch.allclose(out, ref.transpose(1, 2), atol=1e-5)


def test_a_tokenizer_without_end_of_text_is_a_tokenizer_error_not_a_usage_error(tiny):
    class NoEos:
        eos_token_id = None

        def __getattr__(self, name):
            return getattr(tiny.tokenizer, name)

    with pytest.raises(TokenizerError, match="end-of-text"):
        generation.Vocabulary.from_tokenizer(NoEos())
