"""Batched, constrained, KV-cached forecasting of LLMTIME continuations.

Prompt: the first ``history`` steps of a series, encoded with an alpha computed from
those steps only (one per species with ``scale="species"``), then ``;``. The model continues it for ``horizon`` steps.

Constrained decoding: a small state machine per sequence allows, at every position,
only the tokens that keep the output valid LLMTIME (digits, one ``.`` followed by
exactly ``decimals`` digits, ``,`` between the two variables, ``;`` between steps, no
leading zeros, at most ``int_digits`` digits before the point) and ends after exactly
``horizon`` steps. Every output therefore parses. Since only the 14 LLMTIME tokens can
be chosen, the output layer is evaluated for those tokens only: the same argmax and
the same renormalised sampling distribution, at a fraction of the cost.

Batching: series are sorted by prompt length, left-padded, and decoded together
with a KV cache; a batch stops as soon as all its sequences are complete. With K
samples per series, each prompt is prefilled once and its cache expanded to K rows. The cost of
each batch is known up to its stopping point: the estimate reserved in the ledger
assumes every number uses ``int_digits`` digits (an upper bound); what is recorded
is the exact cost of the tokens processed.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lvtime import kvcache, llmtime, signals
from lvtime.errors import TokenizerError, UsageError
from lvtime.flops import Architecture, generate_flops
from lvtime.tokenizer import llmtime_token_ids, pad_id

# Grammar phases of the state machine.
INT_START, INT, FRAC, SEP, DONE = range(5)


def max_new_tokens(horizon: int, decimals: int, int_digits: int) -> int:
    """Tokens of ``horizon`` steps when every number has ``int_digits`` digits."""
    number = int_digits + (1 + decimals if decimals else 0)
    return horizon * 2 * number + (2 * horizon - 1)


MIN_TOKENS_PER_STEP = 4  # "d,d;": a step is never shorter, whatever the tokenizer


def check_fits(arch, history: int, horizon: int, decimals: int, int_digits: int, prompt_lens=None) -> None:
    """Refuse (one line, before any weight is loaded) a forecast whose prompt and answer
    exceed the model's positions: from the steps alone before tokenizing (a huge
    ``--history`` is not even written out), exactly once the prompts are known."""
    limit = arch.max_positions
    if not limit:
        return
    answer = max_new_tokens(horizon, decimals, int_digits)
    longest = max(prompt_lens) if prompt_lens else history * MIN_TOKENS_PER_STEP
    if longest + answer > limit:
        exact = "" if prompt_lens else "at least "
        raise UsageError(
            f"--history {history} and --horizon {horizon} need {exact}{longest + answer} tokens "
            f"({longest} of prompt, {answer} of answer); {arch.name} takes at most {limit}"
        )


@dataclass
class Vocabulary:
    """Token ids of the LLMTIME alphabet in column order, plus end-of-text."""

    ids: torch.Tensor  # (14,) digits 0-9, '.', ',', ';', eos

    @classmethod
    def from_tokenizer(cls, tokenizer) -> Vocabulary:
        mapping = llmtime_token_ids(tokenizer, llmtime.LLMTIME_ALPHABET)
        eos = tokenizer.eos_token_id
        if eos is None:
            raise TokenizerError("the tokenizer has no end-of-text token")
        ids = [mapping[c] for c in llmtime.LLMTIME_ALPHABET] + [eos]
        return cls(torch.tensor(ids))


DOT, COMMA, SEMI, EOS = 10, 11, 12, 13  # columns in Vocabulary.ids after the ten digits


class Grammar:
    """Vectorised LLMTIME state machine over a batch of sequences.

    Phases: INT_START (a number begins: a digit), INT (more digits up to
    ``int_digits``, none after a leading 0, then ``.``), FRAC (exactly ``decimals``
    digits), SEP (number complete: ``,`` after prey, ``;`` after predator), DONE
    (end-of-text padding). The last predator value completes the sequence; with
    ``decimals=0`` it is closed by end-of-text.
    """

    def __init__(self, batch: int, horizon: int, decimals: int, int_digits: int, device):
        if horizon < 1 or int_digits < 1:
            raise UsageError("--horizon and --int-digits must be >= 1")
        self.horizon, self.decimals, self.int_digits = horizon, decimals, int_digits
        z = lambda: torch.zeros(batch, dtype=torch.long, device=device)  # noqa: E731
        self.phase, self.count, self.var, self.steps = z(), z(), z(), z()
        self.zero = torch.zeros(batch, dtype=torch.bool, device=device)  # integer part is "0"

    @property
    def done(self) -> torch.Tensor:
        return self.phase == DONE

    def _last_value(self) -> torch.Tensor:
        return (self.var == 1) & (self.steps == self.horizon - 1)

    def allowed(self) -> torch.Tensor:
        """(batch, 14) boolean mask of the columns each sequence may emit next."""
        ph = self.phase
        in_int = ph == INT
        complete = (ph == SEP) | (in_int & (self.decimals == 0))
        last = self._last_value()
        m = torch.zeros(ph.shape[0], 14, dtype=torch.bool, device=ph.device)
        m[:, :10] = ((ph == INT_START) | (ph == FRAC) | (in_int & (self.count < self.int_digits) & ~self.zero))[:, None]
        m[:, DOT] = in_int & (self.decimals > 0)
        m[:, COMMA] = complete & (self.var == 0)
        m[:, SEMI] = complete & (self.var == 1) & ~last
        m[:, EOS] = self.done | (complete & last)
        return m

    def advance(self, col: torch.Tensor) -> None:
        """Move every sequence past the column it emitted."""
        ph, cnt = self.phase.clone(), self.count.clone()
        digit = col < 10
        start = digit & (ph == INT_START)
        cnt = torch.where(start, 1, torch.where(digit & (ph != INT_START), cnt + 1, cnt))
        self.zero = torch.where(start, col == 0, self.zero)
        ph = torch.where(start, INT, ph)
        ph = torch.where(digit & (self.phase == FRAC) & (cnt >= self.decimals), SEP, ph)
        ph = torch.where(col == DOT, FRAC, ph)
        cnt = torch.where(col == DOT, 0, cnt)
        sep = (col == COMMA) | (col == SEMI)
        ph = torch.where(sep, INT_START, ph)
        self.steps = self.steps + (col == SEMI).long()
        self.var = torch.where(col == COMMA, 1, torch.where(col == SEMI, 0, self.var))
        ph = torch.where(col == EOS, DONE, ph)
        self.phase, self.count = ph, cnt
        # the last predator value's final digit completes the sequence
        self.phase = torch.where((self.phase == SEP) & self._last_value(), DONE, self.phase)


def _choose(
    logits: torch.Tensor, allowed: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None
) -> torch.Tensor:
    logits = logits.float().masked_fill(~allowed, float("-inf"))
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, -1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < top_p  # always keeps the top token
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


@torch.no_grad()
def generate_batch(
    model,
    prompts: list[list[int]],
    vocab: Vocabulary,
    horizon: int,
    decimals: int = 2,
    int_digits: int = 2,
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    pad_id: int = 0,
    samples: int = 1,
    kv_cache: str = "shared",
) -> tuple[list[list[int]], int, int]:
    """Decode one left-padded batch of prompts, ``samples`` sequences per prompt (the
    prompt is prefilled once). ``kv_cache``: ``shared`` (a buffer allocated once; the
    samples of a prompt share its part), ``preallocated`` (the buffer, the prompt repeated
    per sample) or ``dynamic`` (transformers' concatenating cache: lvtime's earlier path,
    for benchmarks). Returns (column sequences, prompt-major then sample; padded prompt
    length; decoded tokens fed back)."""
    device = model.device
    b = len(prompts)
    ids, attn = _left_pad(prompts, pad_id, device)
    p_len = ids.shape[1]
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    head = model.get_output_embeddings().weight[vocab.ids.to(device)]  # (14, hidden)
    base = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    # transformers 5 renamed the KV-cache argument and output field from past_key_values
    cache_kw = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    out = base(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True)
    logits = out.last_hidden_state[:, -1] @ head.t()
    cache = out.get(cache_kw)
    budget = max_new_tokens(horizon, decimals, int_digits)
    # the prompt's cache is shared by the samples unless the model runs a kernel of its own (flash, flex)
    share = kv_cache == "shared" and samples > 1 and model.config._attn_implementation in ("sdpa", "eager")
    preallocated = kv_cache != "dynamic" and kvcache.preallocate(cache, budget, samples, attn if share else None)
    if samples > 1:  # K rows per prompt from one prefill
        if not preallocated:
            cache.batch_repeat_interleave(samples)
        logits, attn, pos = (t.repeat_interleave(samples, 0) for t in (logits, attn, pos))
        b *= samples
    step = functools.partial(_decode_step, base, vocab.ids.to(device), head, cache_kw)
    with kvcache.shared_prompt(model, cache) if share and preallocated else contextlib.nullcontext():
        grammar = Grammar(b, horizon, decimals, int_digits, device)
        cols, fed_back = _decode(step, logits, attn, pos, cache, grammar, budget, temperature, top_p, generator)
    seqs = torch.stack(cols, 1).cpu().tolist()
    return seqs, p_len, fed_back


def _left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of the prompts, left-padded to the longest."""
    p_len = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), p_len), pad_id, dtype=torch.long)
    attn = torch.zeros((len(prompts), p_len), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, p_len - len(p) :] = torch.tensor(p)
        attn[i, p_len - len(p) :] = 1
    return ids.to(device), attn.to(device)


def _decode_step(base, ids, head, cache_kw, col, attn, pos, cache):
    """Feed the chosen columns back: (logits over the 14 LLMTIME tokens, cache)."""
    kw = {cache_kw: cache}
    out = base(input_ids=ids[col][:, None], attention_mask=attn, position_ids=pos, use_cache=True, **kw)
    return out.last_hidden_state[:, -1] @ head.t(), out.get(cache_kw)


def _decode(step, logits, attn, pos, cache, grammar, budget, temperature, top_p, generator):
    """Choose, advance the grammar, feed back, until every sequence is done."""
    cols: list[torch.Tensor] = []
    fed_back = 0
    for _ in range(budget):
        signals.check()
        col = _choose(logits, grammar.allowed(), temperature, top_p, generator)
        grammar.advance(col)
        cols.append(col)
        if bool(grammar.done.all()):
            break
        attn = torch.cat([attn, attn.new_ones((attn.shape[0], 1))], -1)
        pos = pos[:, -1:] + 1
        logits, cache = step(col, attn, pos, cache)
        fed_back += 1
    return cols, fed_back


def columns_to_text(cols: list[int]) -> str:
    return "".join(llmtime.LLMTIME_ALPHABET[c] for c in cols if c < len(llmtime.LLMTIME_ALPHABET))


@dataclass
class ForecastResult:
    """Forecasts in original units for N series."""

    series: np.ndarray  # (N,) dataset indices
    alphas: np.ndarray  # (N,), or (N, 2) with scale="species"
    forecast: np.ndarray  # (N, horizon, 2): the median over samples
    low: np.ndarray  # (N, horizon, 2): 10% quantile (= forecast when 1 sample)
    high: np.ndarray  # (N, horizon, 2): 90% quantile
    samples: np.ndarray  # (N, K, horizon, 2)
    texts: list[list[str]]  # (N, K)
    parse_failures: int
    flops: float
    tokens_processed: int  # prompt tokens prefilled + tokens fed back (benchmarks report tokens/s)


def prompts_for(
    history: np.ndarray, tokenizer, decimals: int, scale: str = "series"
) -> tuple[list[list[int]], np.ndarray]:
    """Token ids of ``history (N, H, 2)`` encoded with alphas from the history only."""
    texts, alphas = llmtime.encode_batch(history, None, decimals, scale)
    return [tokenizer.encode(t + llmtime.STEP_SEP, add_special_tokens=False) for t in texts], alphas


def estimate(
    arch: Architecture,
    prompt_lens: list[int],
    horizon: int,
    decimals: int,
    int_digits: int,
    batch_size: int,
    num_samples: int = 1,
    convention: str = "coursework",
) -> float:
    """Upper-bound FLOPs of forecasting: every number at ``int_digits`` digits."""
    lens = sorted(prompt_lens)
    n_new = max_new_tokens(horizon, decimals, int_digits)
    per_batch = series_per_batch(batch_size, num_samples)
    total = 0.0
    for i in range(0, len(lens), per_batch):
        chunk = lens[i : i + per_batch]
        total += generate_flops(
            arch,
            max(chunk),
            n_new,
            len(chunk),
            convention=convention,
            head_vocab=llmtime.NUMERIC_HEAD_SIZE,
            samples=num_samples,
        )["total"]
    return total


def series_per_batch(batch_size: int, num_samples: int) -> int:
    """Series decoded together: ``batch_size`` sequences, ``num_samples`` per series."""
    return max(1, batch_size // num_samples)


def forecast(
    model,
    tokenizer,
    arch: Architecture,
    series: np.ndarray,
    indices: np.ndarray,
    history: int = 50,
    horizon: int = 50,
    decimals: int = 2,
    int_digits: int = 2,
    batch_size: int = 16,
    num_samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    convention: str = "coursework",
    on_batch: Callable[[int], None] | None = None,
    kv_cache: str = "shared",
    scale: str = "series",
) -> ForecastResult:
    """Forecast ``series[:, history:history+horizon]`` from ``series[:, :history]``."""
    if history < 1 or series.shape[1] < history:
        raise UsageError(f"--history {history}: series have {series.shape[1]} steps")
    if num_samples > 1 and temperature <= 0:
        raise UsageError("--num-samples > 1 needs --temperature > 0 (greedy samples are identical)")
    prompts, alphas = prompts_for(series[:, :history], tokenizer, decimals, scale)
    sampling = dict(temperature=temperature, top_p=top_p, seed=seed, num_samples=num_samples)
    texts, flops, tokens = _decode_prompts(
        model, tokenizer, arch, prompts, horizon, decimals, int_digits, batch_size, convention, on_batch, kv_cache,
        **sampling,
    )  # fmt: skip
    samples, failures = parse_samples(texts, alphas, horizon, decimals)
    low, high = np.quantile(samples, [0.1, 0.9], axis=1)
    return ForecastResult(
        series=np.asarray(indices),
        alphas=alphas,
        forecast=np.median(samples, axis=1),
        low=low,
        high=high,
        samples=samples,
        texts=texts,
        parse_failures=failures,
        flops=flops,
        tokens_processed=tokens,
    )


def _decode_prompts(
    model,
    tokenizer,
    arch,
    prompts,
    horizon,
    decimals,
    int_digits,
    batch_size,
    convention,
    on_batch,
    kv_cache,
    *,
    temperature,
    top_p,
    seed,
    num_samples,
) -> tuple[list[list[str]], float, int]:
    """Every prompt's ``num_samples`` texts, in batches of similar length; the FLOPs and
    tokens that took."""  # fmt: skip
    vocab = Vocabulary.from_tokenizer(tokenizer)
    n = len(prompts)
    order = sorted(range(n), key=lambda i: len(prompts[i]))  # similar lengths share a batch: less padding
    per_batch = series_per_batch(batch_size, num_samples)
    gen = torch.Generator(device=model.device).manual_seed(seed) if temperature > 0 else None
    pad = pad_id(tokenizer)
    texts = [["" for _ in range(num_samples)] for _ in range(n)]
    flops, tokens = 0.0, 0
    for start in range(0, n, per_batch):
        chunk = order[start : start + per_batch]
        batch = [prompts[i] for i in chunk]
        seqs, p_len, fed = generate_batch(
            model, batch, vocab, horizon, decimals, int_digits, temperature, top_p, gen, pad, num_samples, kv_cache
        )
        for j, cols in enumerate(seqs):
            texts[chunk[j // num_samples]][j % num_samples] = columns_to_text(cols)
        cost = generate_flops(
            arch, p_len, fed + 1, len(chunk), convention, llmtime.NUMERIC_HEAD_SIZE, samples=num_samples
        )
        flops += cost["total"]
        tokens += len(chunk) * (p_len + num_samples * fed)
        if on_batch:
            on_batch(len(chunk) * num_samples)
    return texts, flops, tokens


def parse_samples(texts: list[list[str]], alphas: np.ndarray, horizon: int, decimals: int) -> tuple[np.ndarray, int]:
    """(N, K, horizon, 2) values of the texts (NaN where a step is missing) and the
    number of texts that did not parse to exactly ``horizon`` steps."""
    samples = np.full((len(texts), len(texts[0]) if texts else 1, horizon, 2), np.nan)
    failures = 0
    for i, row in enumerate(texts):
        for k, text in enumerate(row):
            d = llmtime.decode(text, alphas[i], decimals)
            failures += int(not d.ok or len(d.steps) != horizon)
            samples[i, k] = d.aligned(horizon)
    return samples, failures
