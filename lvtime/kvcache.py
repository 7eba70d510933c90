"""KV caches for decoding: allocated once, and with samples, the prompt's part shared.

transformers' ``DynamicCache`` appends each new token with ``torch.cat``, which copies
the whole cache at every step: at batch 50 and ~800 cached tokens that is ~1.5 GB of
memory traffic per step on SmolLM2-135M, more than the weights themselves. Here each
layer's keys and values live in a buffer sized for the prompt plus every token the
grammar may still add; a step writes one slice and attention reads a view of the
filled part, so it attends over exactly the tokens it would have attended to before
(same FLOPs, same results).

With K samples per prompt, the prompt's keys and values are kept once per prompt
instead of K times, and only the generated tokens have a row per sample. A decoding
step then attends in two parts: the K samples' queries together against their shared
prompt (one read of it instead of K), and each sample's query against its own tokens;
the two softmaxes are merged exactly through their log-sum-exps. The dot products are
the same ones, so the FLOPs are too; only the memory traffic falls.

``preallocate`` converts a prefilled ``DynamicCache`` in place and returns False,
changing nothing, where the installed transformers has another cache layout.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import torch

ATTENTION = "lvtime_shared_prompt"
_active_cache: contextvars.ContextVar = contextvars.ContextVar("lvtime_shared_prompt_cache", default=None)


@functools.cache
def _buffered_layer_class():
    """``DynamicLayer`` subclass whose ``update`` writes into a fixed buffer and returns views."""
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # transformers < 4.56 stores the cache as lists of tensors
        return None

    class BufferedLayer(DynamicLayer):
        prompt_len = 0  # > 0: the prompt is shared (prompt_keys, prompt_values, prompt_mask)

        def update(self, key_states, value_states, *args, **kwargs):
            end = self.length + key_states.shape[-2]
            self.key_buffer[:, :, self.length : end] = key_states
            self.value_buffer[:, :, self.length : end] = value_states
            self.length = end
            self.keys = self.key_buffer[:, :, :end]
            self.values = self.value_buffer[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.prompt_len + self.length

    return BufferedLayer


def preallocate(cache, extra_tokens: int, samples: int = 1, prompt_mask: torch.Tensor | None = None) -> bool:
    """Move every layer of ``cache`` into a buffer with room for ``extra_tokens`` more.

    With ``samples`` > 1 and the prompt's ``prompt_mask`` (batch, prompt length; 1 for
    real tokens), the prompt is shared by the samples (decode under :func:`shared_prompt`);
    without the mask it is repeated ``samples`` times.
    """
    buffered = _buffered_layer_class()
    layers = getattr(cache, "layers", None)
    if buffered is None or not layers or any(type(layer) is not buffered.__base__ for layer in layers):
        return False
    share = samples > 1 and prompt_mask is not None
    cache.layers = [
        _shared(buffered(), layer, extra_tokens, samples, prompt_mask)
        if share
        else _buffered(buffered(), layer, extra_tokens, samples)
        for layer in layers
    ]
    return True


def _buffered(new, layer, extra_tokens: int, samples: int):
    keys, values = layer.keys, layer.values
    if samples > 1:
        keys, values = keys.repeat_interleave(samples, 0), values.repeat_interleave(samples, 0)
    _allocate(new, keys.shape[0], keys.shape[2] + extra_tokens, keys, values)
    new.update(keys, values)
    return new


def _shared(new, layer, extra_tokens: int, samples: int, prompt_mask: torch.Tensor):
    keys, values = layer.keys, layer.values
    _allocate(new, keys.shape[0] * samples, extra_tokens, keys, values)
    new.samples, new.prompt_len = samples, keys.shape[2]
    new.prompt_keys, new.prompt_values = keys, values
    blocked = torch.finfo(keys.dtype).min  # additive mask: padding is never attended to
    new.prompt_mask = torch.zeros(prompt_mask.shape, dtype=keys.dtype, device=keys.device).masked_fill(
        prompt_mask == 0, blocked
    )[:, None, None, :]
    return new


def _allocate(new, rows: int, length: int, keys: torch.Tensor, values: torch.Tensor) -> None:
    _, h, _, d = keys.shape
    new.key_buffer = keys.new_empty(rows, h, length, d)
    new.value_buffer = values.new_empty(rows, h, length, values.shape[-1])
    new.length = 0
    new.lazy_initialization(keys, values)


@contextlib.contextmanager
def shared_prompt(model, cache):
    """Decode ``model`` (its attention modules read ``config._attn_implementation``)
    with the shared-prompt attention over ``cache``; restores the previous one."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, _shared_prompt_attention)
    before = model.config._attn_implementation
    token = _active_cache.set(cache)
    model.config._attn_implementation = ATTENTION
    try:
        yield
    finally:
        model.config._attn_implementation = before
        _active_cache.reset(token)


def _shared_prompt_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """One decoding step: (batch x K, heads, 1, dim) queries; ``key``/``value`` hold each
    sample's own tokens, the layer its prompt. The mask is the layer's own (the step's
    tokens are all real). Returns (batch x K, 1, heads, dim) as transformers' sdpa does."""
    layer = _active_cache.get().layers[module.layer_idx]
    rows, heads, _, dim = query.shape
    kv_heads, k = key.shape[1], layer.samples
    group, b = heads // kv_heads, rows // k
    # prompt part: the K samples' queries of a prompt attend together, grouped by KV head
    q = query.reshape(b, k, kv_heads, group, dim).transpose(1, 2).reshape(b, kv_heads, k * group, dim)
    out_p, lse_p = _attend(q, layer.prompt_keys, layer.prompt_values, layer.prompt_mask, scaling)
    out_p = out_p.reshape(b, kv_heads, k, group, dim).transpose(1, 2).reshape(rows, kv_heads, group, dim)
    lse_p = lse_p.reshape(b, kv_heads, k, group).transpose(1, 2).reshape(rows, kv_heads, group)
    # own part, then the exact merge of the two softmaxes
    out_s, lse_s = _attend(query.reshape(rows, kv_heads, group, dim), key, value, None, scaling)
    top = torch.maximum(lse_p, lse_s)
    w_p, w_s = (lse_p - top).exp()[..., None], (lse_s - top).exp()[..., None]
    out = (out_p.float() * w_p + out_s.float() * w_s) / (w_p + w_s)
    return out.to(query.dtype).reshape(rows, 1, heads, dim), None


def _cpu_kernel():
    """torch's CPU flash-attention op, which also returns the log-sum-exp (None if absent)."""
    return getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def _attend(q, k, v, mask, scale):
    """Softmax attention and its log-sum-exp per query (float32)."""
    kernel = _cpu_kernel() if q.device.type == "cpu" else None
    if kernel is not None:
        out, lse = kernel(q, k, v, attn_mask=mask, scale=scale)
        return out, lse
    scores = (q.float() @ k.float().transpose(-1, -2)) * (scale if scale is not None else q.shape[-1] ** -0.5)
    if mask is not None:
        scores = scores + mask.float()
    lse = scores.logsumexp(-1)
    return (scores - lse[..., None]).exp() @ v.float(), lse
