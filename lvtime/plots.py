"""Figures (the optional ``plot`` extra). Every function returns None without matplotlib."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def loss_curve(run_dir: Path) -> Path | None:
    """``loss.png``: training loss per step and validation loss, from metrics.jsonl."""
    plt = _pyplot()
    metrics = run_dir / "metrics.jsonl"
    if plt is None or not metrics.exists():
        return None
    rows = [json.loads(x) for x in metrics.read_text().splitlines() if x]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train", alpha=0.7)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation")
    ax.set(xlabel="optimizer step", ylabel="loss (nats / token)", title=run_dir.name)
    ax.legend()
    fig.tight_layout()
    path = run_dir / "loss.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def forecast_figure(
    path: Path, series: int, history: np.ndarray, truth: np.ndarray, forecast: np.ndarray,
    low: np.ndarray | None = None, high: np.ndarray | None = None, title: str = "",
) -> Path | None:
    """History, truth, forecast and the 10-90% band for both species of one series."""
    plt = _pyplot()
    if plt is None:
        return None
    h, n = history.shape[0], truth.shape[0]
    t_hist, t_fut = np.arange(h), np.arange(h, h + n)
    fig, axes = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for s, (ax, name) in enumerate(zip(axes, ("prey", "predator"), strict=True)):
        ax.plot(t_hist, history[:, s], color="black", label="history")
        ax.plot(t_fut, truth[:, s], color="black", ls="--", label="truth")
        ax.plot(t_fut, forecast[:, s], color="C1", label="forecast")
        if low is not None and high is not None and not np.allclose(low, high, equal_nan=True):
            ax.fill_between(t_fut, low[:, s], high[:, s], color="C1", alpha=0.25, label="10-90%")
        ax.set_ylabel(name)
    axes[0].legend(fontsize=8, loc="upper left")
    axes[1].set_xlabel("step")
    fig.suptitle(title or f"series {series}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def summary_figure(path: Path, scores: dict[str, np.ndarray], metric: str = "mae") -> Path | None:
    """Per-series ``metric`` of the model and the reference forecasts, as box plots."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    for s, (ax, name) in enumerate(zip(axes, ("prey", "predator"), strict=True)):
        data = [v[:, s][np.isfinite(v[:, s])] for v in scores.values()]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(scores) + 1), list(scores), rotation=15)
        ax.set_title(f"{name}: {metric.upper()} per series")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
