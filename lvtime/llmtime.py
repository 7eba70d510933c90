"""LLMTIME text codec for two-variable (prey, predator) series. numpy only.

A series of shape ``(T, 2)`` is divided by a scale ``alpha`` and written with a fixed
number of decimals: values at one timestep are joined by ``,``, timesteps by ``;``,
with no spaces and no trailing separator::

    >>> text, alpha = encode(np.array([[2.9, 1.1], [3.2, 0.9], [3.8, 0.7], [4.5, 0.6], [5.1, 0.5]]))
    >>> text
    '5.82,2.21;6.43,1.81;7.63,1.41;9.04,1.20;10.24,1.00'

``alpha = max(P95(prey), P95(predator)) / 10`` (numpy's default linear percentile), so
that typical values land near 0-10 and need few digits. With ``scale="species"`` each
species has its own ``alpha = P95 / 10`` (a pair ``(prey, predator)``), so the smaller
species keeps as many significant digits as the larger. Decoding is tolerant: it never
raises on model output and reports what it dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

# re-exported: the codec is where the rest of lvtime looks for its alphabet
from lvtime.alphabet import LLMTIME_ALPHABET, NUMERIC_HEAD_SIZE, STEP_SEP, VALUE_SEP, head_vocab  # noqa: F401

N_VARIABLES = 2
DEFAULT_DECIMALS = 2
ALPHA_PERCENTILE = 95.0
ALPHA_TARGET = 10.0
# One alpha per series for both species, or one per species (a pair).
SCALES = ("series", "species")


def compute_alpha(series: np.ndarray, scale: str = "series") -> np.ndarray | float:
    """Scale factor(s) for one series ``(T, 2)`` or a batch ``(N, T, 2)``.

    ``scale="series"``: a float for one series, shape ``(N,)`` for a batch.
    ``scale="species"``: one alpha per species, shape ``(2,)`` or ``(N, 2)``.
    Degenerate values, whose P95 is below a millionth of their largest value (mostly
    zeros with a spike), use ``max / 10`` instead so their text stays short and finite;
    all-zero values get alpha 1.
    """
    _check_scale(scale)
    arr = np.asarray(series, dtype=np.float64)
    if arr.ndim not in (2, 3) or arr.shape[-1] != N_VARIABLES:
        raise ValueError(f"expected shape (T, 2) or (N, T, 2), got {arr.shape}")
    p95 = np.percentile(arr, ALPHA_PERCENTILE, axis=-2)  # (..., 2)
    peak = np.abs(arr).max(axis=-2)  # (..., 2)
    if scale == "series":
        p95, peak = p95.max(axis=-1), peak.max(axis=-1)
    alpha, peak = p95 / ALPHA_TARGET, peak / ALPHA_TARGET
    alpha = np.where(alpha > peak * 1e-6, alpha, peak)
    alpha = np.where(alpha > 0, alpha, 1.0)
    return float(alpha) if alpha.ndim == 0 else alpha


def global_alpha(train_series: np.ndarray, scale: str = "series") -> np.ndarray | float:
    """One alpha (or one per species) for a whole dataset, from the training split ``(N, T, 2)``."""
    arr = np.asarray(train_series, dtype=np.float64).reshape(-1, N_VARIABLES)
    return compute_alpha(arr, scale)


def per_species(alphas: np.ndarray) -> np.ndarray:
    """Alphas of N series, ``(N,)`` or ``(N, 2)``, as ``(N, 2)``: each species' own."""
    a = np.asarray(alphas, dtype=np.float64)
    return np.broadcast_to(a.reshape(len(a), -1), (len(a), N_VARIABLES))


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, not {scale!r}")


def _checked_alpha(alpha) -> np.ndarray:
    """A given alpha: one positive number, or a (prey, predator) pair of them."""
    a = np.asarray(alpha, dtype=np.float64)
    if a.shape not in ((), (N_VARIABLES,)) or not np.all(np.isfinite(a)) or not np.all(a > 0):
        raise ValueError(f"alpha must be a positive number or a (prey, predator) pair of them, got {alpha}")
    return a


def format_steps(scaled: np.ndarray, decimals: int = DEFAULT_DECIMALS) -> str:
    """Write already-scaled values ``(T, 2)`` as LLMTIME text."""
    fmt = f"{{:.{decimals}f}}{VALUE_SEP}{{:.{decimals}f}}"
    # str.format over tolist() is ~10x faster than np.char and exact in its rounding.
    return STEP_SEP.join(fmt.format(a, b) for a, b in np.asarray(scaled).tolist())


def encode(
    series: np.ndarray, alpha=None, decimals: int = DEFAULT_DECIMALS, scale: str = "series"
) -> tuple[str, np.ndarray | float]:
    """Encode one series ``(T, 2)``; returns ``(text, alpha)``.

    ``alpha`` (a number, or a ``(prey, predator)`` pair) defaults to
    :func:`compute_alpha` of this series with ``scale``.
    """
    arr = np.asarray(series, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != N_VARIABLES:
        raise ValueError(f"expected a series of shape (T, 2), got {arr.shape}")
    if decimals < 0:
        raise ValueError("decimals must be >= 0")
    a = compute_alpha(arr, scale) if alpha is None else _checked_alpha(alpha)
    return format_steps(_scaled(arr, a), decimals), (float(a) if np.ndim(a) == 0 else a)


def encode_batch(
    series: np.ndarray, alphas=None, decimals: int = DEFAULT_DECIMALS, scale: str = "series"
) -> tuple[list[str], np.ndarray]:
    """Encode ``(N, T, 2)`` series; returns the texts and the alphas: ``(N,)`` with
    ``scale="series"``, ``(N, 2)`` with ``scale="species"``.

    ``alphas``: None (each series' own), one number for all, or per series ``(N,)``;
    with ``scale="species"`` also a pair for all ``(2,)`` or per series ``(N, 2)``.
    """
    _check_scale(scale)
    arr = np.asarray(series, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != N_VARIABLES:
        raise ValueError(f"expected series of shape (N, T, 2), got {arr.shape}")
    shape = arr.shape[:1] if scale == "series" else (arr.shape[0], N_VARIABLES)
    a = compute_alpha(arr, scale) if alphas is None else np.broadcast_to(np.asarray(alphas, np.float64), shape)
    scaled = _scaled(arr, per_species(a)[:, None, :])
    return [format_steps(s, decimals) for s in scaled], np.array(a, dtype=np.float64)


def _scaled(values: np.ndarray, alpha) -> np.ndarray:
    """``values / alpha``, refused in one line when that overflows (a tiny alpha)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        out = values / alpha
    if not np.isfinite(out).all():
        from lvtime.errors import UsageError

        small = float(np.min(alpha))
        raise UsageError(f"alpha {small:.3g}: the scaled values overflow (not finite); use a larger alpha")
    return out


@dataclass
class Dropped:
    """A timestep that did not parse: its position in the text, the text, and why."""

    step: int
    text: str
    reason: str


@dataclass
class Decoded:
    """The result of decoding model output.

    Attributes:
        values: parsed timesteps in original units, shape ``(n, 2)``.
        steps: index of each parsed timestep in the text, shape ``(n,)``.
        dropped: timesteps that did not parse, with the reason.
        n_steps: how many timesteps the text held (parsed or not).
    """

    values: np.ndarray
    steps: np.ndarray
    dropped: list[Dropped] = field(default_factory=list)
    n_steps: int = 0

    @property
    def ok(self) -> bool:
        return not self.dropped

    def aligned(self, horizon: int) -> np.ndarray:
        """``(horizon, 2)`` array: parsed steps in their places, NaN where missing."""
        out = np.full((horizon, N_VARIABLES), np.nan)
        keep = self.steps < horizon
        out[self.steps[keep]] = self.values[keep]
        return out

    def report(self) -> dict:
        return {
            "parsed_steps": len(self.steps),
            "total_steps": self.n_steps,
            "dropped": [d.__dict__ for d in self.dropped],
        }


_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # ASCII digits only: \d also matches e.g. Arabic-Indic


def decode(text: str, alpha=1.0, decimals: int | None = DEFAULT_DECIMALS) -> Decoded:
    """Parse LLMTIME text back to values (multiplied by ``alpha``: a number, or a
    ``(prey, predator)`` pair for text encoded with ``scale="species"``). Never raises
    on the text.

    A timestep is kept when it has exactly two numbers and, if ``decimals`` is given,
    each has exactly that many digits after the point (fewer means the model stopped
    mid-number). Everything else is dropped and reported: wrong number of values,
    stray characters, truncated numbers. Surrounding whitespace, a trailing ``;`` and
    empty text are accepted silently.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    body = text.strip()
    if body.endswith(STEP_SEP):
        body = body[:-1]
    values: list[tuple[float, float]] = []
    steps: list[int] = []
    dropped: list[Dropped] = []
    parts = body.split(STEP_SEP) if body else []
    scale = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (N_VARIABLES,))
    for i, part in enumerate(parts):
        reason = _step_problem(part.strip(), decimals)
        a, b = (float(x) for x in part.strip().split(VALUE_SEP)) if reason is None else (0.0, 0.0)
        if reason is None and not all(math.isfinite(v * s) for v, s in zip((a, b), scale.tolist(), strict=True)):
            reason = "overflows a float (too many digits, or too large an alpha)"
        if reason:
            dropped.append(Dropped(i, part, reason))
            continue
        values.append((a, b))
        steps.append(i)
    return Decoded(
        values=np.array(values, dtype=np.float64).reshape(-1, N_VARIABLES) * scale,
        steps=np.array(steps, dtype=np.int64),
        dropped=dropped,
        n_steps=len(parts),
    )


def _step_problem(step: str, decimals: int | None) -> str | None:
    """Why a timestep's text cannot be used, or None when it can."""
    if not step:
        return "empty timestep"
    fields = step.split(VALUE_SEP)
    if len(fields) != N_VARIABLES:
        return f"expected {N_VARIABLES} values, found {len(fields)}"
    for f in fields:
        if not _NUMBER.fullmatch(f):
            return f"not a number: {f!r}"
        if decimals is not None:
            frac = f.partition(".")[2]
            if len(frac) != decimals:
                return f"expected {decimals} decimals in {f!r} (truncated?)"
    return None
