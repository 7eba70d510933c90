"""Forecasts of validation series during training (``finetune --forecast-every N``): which
series, what one evaluation costs, and how it scores.

The series are the first ``--forecast-series`` of the validation split, each cut into
``history`` steps of prompt and the next steps (at most 50) to forecast -- the window a
sweep's ranking forecast uses too. An evaluation is counted exactly as ``lvtime
forecast`` counts the same series (the tokens it really processed); its upper bound,
planned before training, is the one a forecast run reserves. The ranking score is the
median MASE over series, averaged over prey and predator (lower is better).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lvtime.config import FinetuneConfig

MAX_HORIZON = 50


def window(history: int, points: int) -> tuple[int, int]:
    """(history, horizon) for series of ``points`` steps: the history at most half the
    series, the horizon what is left, at most 50 steps."""
    h = min(history, points // 2)
    return h, min(MAX_HORIZON, points - h)


@dataclass
class ForecastSet:
    indices: np.ndarray  # dataset indices of the series
    series: np.ndarray  # (K, history + horizon, 2)
    history: int
    horizon: int
    prompt_lens: list[int]
    dt: float  # the data's time step (the ODE reference integrates in it)


def select(cfg: FinetuneConfig, dataset, tokenizer) -> ForecastSet | None:
    """The series a run forecasts (None when ``forecast_every`` is 0)."""
    if not cfg.forecast_every:
        return None
    from lvtime.data import split_indices, time_step
    from lvtime.generation import prompts_for

    history, horizon = window(cfg.history, dataset.n_points)
    idx = split_indices(dataset.n_series, cfg.split_scheme, cfg.seed)["val"][: cfg.forecast_series]
    series = dataset.trajectories[idx, : history + horizon]
    prompts, _ = prompts_for(series[:, :history], tokenizer, cfg.decimals, cfg.scale)
    return ForecastSet(np.asarray(idx), series, history, horizon, [len(p) for p in prompts], time_step(dataset))


def reference_scores(fs: ForecastSet) -> dict[str, dict]:
    """The references' scores on the same series, as an evaluation logs the model's: the
    ranking score and each species' median MAE, R² and MASE. Fitted once, when the run
    logs them (planning a sweep of many configurations fits nothing)."""
    from lvtime import references

    history, truth = fs.series[:, : fs.history], fs.series[:, fs.history :]
    refs, _ = references.compute(history, fs.horizon, fs.dt)
    return {name: _scores(_aggregate(f, truth, history)) for name, f in refs.items()}


def reference_rows(fs: ForecastSet) -> dict:
    """What the step-0 row of ``metrics.jsonl`` logs of the references: each one's ranking
    score (``references``) and per-species scores (``reference_species``)."""
    refs = reference_scores(fs)
    return {
        "references": {name: ref["score"] for name, ref in refs.items()},
        "reference_species": {name: {sp: ref[sp] for sp in ("prey", "predator")} for name, ref in refs.items()},
    }


def estimate(cfg: FinetuneConfig, arch, fs: ForecastSet) -> float:
    """Upper bound of one evaluation's FLOPs (what a forecast run of these series reserves)."""
    from lvtime.generation import estimate as generation_estimate

    return generation_estimate(
        arch, fs.prompt_lens, fs.horizon, cfg.decimals, 2, cfg.forecast_batch, cfg.forecast_samples, cfg.convention
    )


def evaluate(model, tokenizer, arch, cfg: FinetuneConfig, fs: ForecastSet) -> dict:
    """Forecast the series with the model as it is; scores per species, the ranking
    score and the FLOPs spent. Leaves the RNG as it found it (a resumed run, and the
    batches after an evaluation, stay the same)."""
    import torch

    from lvtime.generation import forecast

    sampling = {"num_samples": cfg.forecast_samples, "temperature": 0.7 if cfg.forecast_samples > 1 else 0.0}
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        result = forecast(
            model, tokenizer, arch, fs.series, fs.indices, fs.history, fs.horizon, cfg.decimals,
            batch_size=cfg.forecast_batch, seed=cfg.seed, convention=cfg.convention, scale=cfg.scale, **sampling,
        )  # fmt: skip
    agg = _aggregate(result.forecast, fs.series[:, fs.history :], fs.series[:, : fs.history])
    return {
        **_scores(agg),
        "flops": result.flops,
        "parse_failures": result.parse_failures,
    }


def _scores(agg: dict) -> dict:
    """The ranking score and each species' median MAE, R² and MASE."""
    from lvtime.metrics import ranking

    return {"score": ranking(agg), **{sp: {m: agg[sp][m]["median"] for m in ("mae", "r2", "mase")} for sp in agg}}


def _aggregate(forecast: np.ndarray, truth: np.ndarray, history: np.ndarray) -> dict:
    from lvtime import metrics

    return metrics.aggregate(metrics.per_series(forecast, truth, history))
