"""Figures (the optional ``plot`` extra). Every function returns None without matplotlib.

A figure never fails a run: each public function is :func:`never_fails`, so a figure
that cannot be drawn (a constant series, a value matplotlib refuses, a full disk) is a
warning on stderr, and the run it illustrates keeps its status.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from lvtime import layout, reference_table, shell

T = TypeVar("T")


def never_fails(draw: Callable[..., T]) -> Callable[..., T | None]:
    @functools.wraps(draw)
    def guarded(*args, **kwargs):
        try:
            return draw(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure of a figure: said, never raised
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            shell.say(f"warning: figure not drawn by {draw.__name__} ({reason})")
            plt = _pyplot()
            if plt is not None:
                plt.close("all")
            return None

    return guarded


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


@never_fails
def loss_curve(run_dir: Path) -> Path | None:
    """``loss.png``: training and validation loss per step and, with ``--forecast-every``,
    the forecast score against FLOPs beside the references on the same series."""
    plt = _pyplot()
    rows = layout.read_metrics(run_dir)
    if plt is None or not rows:
        return None
    scores = [r for r in rows if "forecast_score" in r]
    fig, axes = plt.subplots(1, 2 if scores else 1, figsize=(11 if scores else 6, 4), squeeze=False)
    ax = axes[0][0]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    if train:
        ax.plot(*zip(*train, strict=True), label="train", alpha=0.7)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation")
    ax.set(xlabel="optimizer step", ylabel="loss (nats / token)", title=run_dir.name)
    ax.legend()
    if scores:
        _forecast_scores(axes[0][1], scores)
    fig.tight_layout()
    path = run_dir / layout.LOSS_PLOT
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _forecast_scores(ax, rows: list[dict]) -> None:
    ax.plot([r["flops"] for r in rows], [r["forecast_score"] for r in rows], "o-", color="C1", label="model")
    for name, score in next((r["references"] for r in rows if "references" in r), {}).items():
        ref = reference_table.BY_NAME.get(name)  # a name from a newer lvtime: not drawn, not guessed
        if ref is not None and score is not None:
            ax.axhline(score, color="gray", ls=ref.line, label=ref.label)
    ax.set(xlabel="FLOPs spent", ylabel="median MASE (mean of species)", title="forecasts of validation series")
    ax.legend(fontsize=8)


@never_fails
def forecast_figure(
    path: Path,
    series: int,
    history: np.ndarray,
    truth: np.ndarray,
    forecast: np.ndarray,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    title: str = "",
    references: dict[str, np.ndarray] | None = None,
) -> Path | None:
    """History, truth, forecast, the 10-90% band and reference forecasts (thin lines)
    for both species of one series."""
    plt = _pyplot()
    if plt is None:
        return None
    h, n = history.shape[0], truth.shape[0]
    t_hist, t_fut = np.arange(h), np.arange(h, h + n)
    fig, axes = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for s, (ax, name) in enumerate(zip(axes, ("prey", "predator"), strict=True)):
        ax.plot(t_hist, history[:, s], color="black", label="history")
        ax.plot(t_fut, truth[:, s], color="black", ls="--", label="truth")
        for k, (name, ref) in enumerate((references or {}).items()):
            ax.plot(t_fut, ref[:, s], color=f"C{k + 2}", lw=0.8, alpha=0.8, label=reference_table.label(name))
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


@never_fails
def summary_figure(path: Path, scores: dict[str, np.ndarray], metric: str = "mae") -> Path | None:
    """Per-series ``metric`` of the model and the reference forecasts, as box plots."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    for s, (ax, name) in enumerate(zip(axes, ("prey", "predator"), strict=True)):
        data = [v[:, s][np.isfinite(v[:, s])] for v in scores.values()]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(scores) + 1), [reference_table.label(k) for k in scores], rotation=15)
        ax.set_title(f"{name}: {metric.upper()} per series")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@never_fails
def sweep_figures(sweep_dir: Path, rows: list[dict], keys: list[str]) -> list[Path]:
    """``heatmap.png`` (rank x lr validation loss, when both are swept),
    ``curves.png`` (validation loss of every run against steps) and, for a sweep
    ranked by forecasts, ``forecast.png`` (forecast MASE against training FLOPs)."""
    plt = _pyplot()
    if plt is None or not rows:
        return []
    written = []
    if any(r.get("forecast_mase") is not None for r in rows):
        written.append(_forecast_figure(plt, sweep_dir / layout.SWEEP_PLOTS["forecast"], rows))
    if "rank" in keys and "lr" in keys:
        ranks = sorted({r["rank"] for r in rows})
        lrs = sorted({r["lr"] for r in rows})
        grid = np.full((len(ranks), len(lrs)), np.nan)
        for r in rows:
            if r["val_loss"] is not None:
                grid[ranks.index(r["rank"]), lrs.index(r["lr"])] = r["val_loss"]
        fig, ax = plt.subplots(figsize=(1.6 * len(lrs) + 2, 1.2 * len(ranks) + 1.5))
        im = ax.imshow(grid, cmap="viridis_r")
        ax.set_xticks(range(len(lrs)), [f"{x:g}" for x in lrs])
        ax.set_yticks(range(len(ranks)), [str(x) for x in ranks])
        ax.set(xlabel="learning rate", ylabel="LoRA rank", title="final validation loss")
        middle = np.nanmean(grid)
        for i in range(len(ranks)):
            for j in range(len(lrs)):
                if np.isfinite(grid[i, j]):
                    color = "black" if grid[i, j] < middle else "white"  # low loss is the light end
                    ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", color=color, fontsize=8)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(sweep_dir / layout.SWEEP_PLOTS["heatmap"], dpi=100)
        plt.close(fig)
        written.append(sweep_dir / layout.SWEEP_PLOTS["heatmap"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        vals = layout.read_metrics(Path(r["out"]))
        pts = [(v["step"], v["val_loss"]) for v in vals if "val_loss" in v]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=r["run"], ms=3)
    ax.set(xlabel="optimizer step", ylabel="validation loss", title="validation loss per run")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(sweep_dir / layout.SWEEP_PLOTS["curves"], dpi=100)
    plt.close(fig)
    written.append(sweep_dir / layout.SWEEP_PLOTS["curves"])
    return written


def _forecast_figure(plt, path: Path, rows: list[dict]) -> Path:
    """Each run's forecast MASE against its training FLOPs, references as lines."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    done = [r for r in rows if r.get("forecast_mase") is not None]
    ax.scatter([r["flops"] for r in done], [r["forecast_mase"] for r in done], color="C1", zorder=3)
    for r in done:
        ax.annotate(r["run"], (r["flops"], r["forecast_mase"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    limit = reference_table.BY_NAME[reference_table.LIMIT]
    for key, label, style in (
        ("best_reference_mase", "best naive reference", "--"),
        ("ode_limit_mase", limit.label, limit.line),
    ):
        values = [r[key] for r in done if r.get(key) is not None]
        if values:
            ax.axhline(float(np.median(values)), color="gray", ls=style, label=label)
    ax.set(
        xscale="log", xlabel="training FLOPs", ylabel="median MASE (mean of species)", title="forecast score per run"
    )
    if ax.get_legend_handles_labels()[0]:  # a search's rows carry no reference scores to draw
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
