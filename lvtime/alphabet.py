"""The characters of LLMTIME text and the output head they need: what the FLOP estimate
and the codec share. No numpy (``lvtime flops`` reads it)."""

from __future__ import annotations

VALUE_SEP = ","
STEP_SEP = ";"
# Every character LLMTIME text of non-negative values can contain. With the end-of-text
# token these are the only outputs a forecasting model needs (``--head numeric``).
LLMTIME_ALPHABET = "0123456789.,;"
NUMERIC_HEAD_SIZE = len(LLMTIME_ALPHABET) + 1


def head_vocab(head: str) -> int | None:
    """Output-layer width the FLOP estimate counts for ``--head``: None (the model's whole
    vocabulary) for ``full``, the LLMTIME tokens plus end-of-text for ``numeric``."""
    if head == "full":
        return None
    if head == "numeric":
        return NUMERIC_HEAD_SIZE
    from lvtime.errors import UsageError

    raise UsageError(f"--head must be 'full' or 'numeric', not {head!r}")
