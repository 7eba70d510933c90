"""LLMTIME token windows for training and validation.

Every training series is LLMTIME-encoded (its own alpha, the alpha of its first
``history`` steps, or one global alpha) and tokenized; token sequences are cut into
windows of ``context`` tokens with stride ``context / 2`` for training and ``context``
for validation (optionally starting at time-step boundaries, like a forecast prompt).
The short tail window is padded, and padding is masked out of the attention and of the
loss (label -100).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lvtime import llmtime
from lvtime.config import FinetuneConfig
from lvtime.data import Dataset, load_dataset, split_indices, training_alpha
from lvtime.errors import UsageError
from lvtime.tokenizer import pad_id

IGNORE = -100  # label of a position that is not a target (padding)


@dataclass
class Windows:
    """Fixed-length token windows: ``input_ids``, ``attention_mask``, ``labels`` (W, C)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def n_tokens(self) -> int:
        """Real (non-padding) tokens."""
        return int(self.attention_mask.sum())


def encode_series(dataset: Dataset, indices: np.ndarray, tokenizer, cfg: FinetuneConfig, alpha) -> list[list[int]]:
    """Token ids of each selected series' LLMTIME text.

    ``alpha`` (global) wins; else with ``alpha_from="history"`` each series is scaled
    by the alpha of its first ``history`` steps, as its forecast prompt will be.
    """
    series = dataset.trajectories[indices]
    if alpha is None and cfg.alpha_from == "history":
        alpha = llmtime.compute_alpha(series[:, : cfg.history], cfg.scale)
    texts, _ = llmtime.encode_batch(series, alpha, cfg.decimals, cfg.scale)
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


def window_starts(seq: list[int], context: int, stride: int, step_sep: int | None = None) -> list[int]:
    """Start positions of the windows over one token sequence.

    Without ``step_sep``: every ``stride`` tokens until a window reaches the end. With
    it (the ``;`` token id): the same, but each start moves back to the nearest time-step
    boundary (just after a ``;``, or 0), so every window begins like a forecast prompt.
    """
    boundaries = [0] + [i + 1 for i, t in enumerate(seq) if t == step_sep] if step_sep is not None else None
    starts = [0]
    while starts[-1] + context < len(seq):
        target = starts[-1] + stride
        if boundaries is not None:
            # the last boundary at or before target that still moves forward; else the next one
            before = [b for b in boundaries if starts[-1] < b <= target]
            after = [b for b in boundaries if b > target]
            target = before[-1] if before else (after[0] if after else target)
        starts.append(target)
    return starts


def make_windows(
    seqs: list[list[int]], context: int, stride: int, pad_id: int, step_sep: int | None = None, prompt_steps: int = 0
) -> Windows:
    """Cut each sequence into windows (see :func:`window_starts`); pad the last one to
    ``context``. With ``prompt_steps``, each window's first that many time steps (up to
    and including their ``step_sep``) are context only, not targets: the loss falls where
    a forecast from a prompt of that length would write."""
    rows: list[list[int]] = []
    for seq in seqs:
        for start in window_starts(seq, context, stride, step_sep):
            rows.append(seq[start : start + context])
    ids = torch.full((len(rows), context), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), context), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    labels = ids.masked_fill(mask == 0, IGNORE)
    if prompt_steps:
        ends = (ids == step_sep).long().cumsum(dim=1)  # time steps complete up to each position
        prompt = (ends < prompt_steps) | ((ends == prompt_steps) & (ids == step_sep))
        labels = labels.masked_fill(prompt, IGNORE)
    return Windows(ids, mask, labels)


@dataclass
class TrainingData:
    train: Windows
    val: Windows
    alpha: float | np.ndarray | None  # the global alpha (a pair with --scale species), when used
    forecast: object = None  # the validation series forecast during training (lvtime.forecast_eval.ForecastSet)

    def describe(self) -> dict:
        return {
            "train_windows": len(self.train),
            "train_tokens": self.train.n_tokens,
            "val_windows": len(self.val),
            "val_tokens": self.val.n_tokens,
            "global_alpha": None if self.alpha is None else np.asarray(self.alpha).tolist(),
        }


def prepare_data(cfg: FinetuneConfig, dataset: Dataset, tokenizer) -> TrainingData:
    splits = split_indices(dataset.n_series, cfg.split_scheme, cfg.seed)
    train_idx = splits["train"][: cfg.train_series]
    val_idx = splits["val"][: cfg.val_series]
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise UsageError(f"{dataset.path}: too few series for a train and a validation split")
    alpha = None
    if cfg.alpha_mode == "global":
        alpha = training_alpha(dataset, cfg.split_scheme, cfg.seed, cfg.scale)
    pad = pad_id(tokenizer)
    sep = None
    if cfg.window_starts == "steps":
        from lvtime.tokenizer import llmtime_token_ids

        sep = llmtime_token_ids(tokenizer, llmtime.LLMTIME_ALPHABET)[llmtime.STEP_SEP]
    train_seqs = encode_series(dataset, train_idx, tokenizer, cfg, alpha)
    if cfg.extra_train is not None:
        extra = load_dataset(cfg.extra_train)
        train_seqs += encode_series(extra, np.arange(extra.n_series), tokenizer, cfg, alpha)
    val_seqs = encode_series(dataset, val_idx, tokenizer, cfg, alpha)
    longest = max(len(seq) for seq in train_seqs + val_seqs)
    if cfg.context > longest:  # windows are context long: all padding past the longest series, and charged
        raise UsageError(f"--context {cfg.context}: the longest series is {longest} tokens; use at most that")
    prompt_steps = cfg.history if cfg.loss_on == "horizon" else 0
    train = make_windows(train_seqs, cfg.context, max(cfg.context // 2, 1), pad, sep, prompt_steps)
    # validation windows do not overlap (stride = context; at most one step with --window-starts steps)
    val = make_windows(val_seqs, cfg.context, cfg.context, pad, sep, prompt_steps)
    if not (train.labels != IGNORE).any() or not (val.labels != IGNORE).any():
        raise UsageError(f"--loss-on horizon: no window is longer than --history {cfg.history} steps")
    return TrainingData(train, val, alpha)
