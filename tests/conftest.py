"""Shared fixtures: small datasets and an isolated ledger and cache per test."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """A background job of a non-interactive shell (``pytest &``, nohup, some CI runners)
    starts with SIGINT ignored, and lvtime rightly keeps an ignored SIGINT ignored; the
    tests that press Ctrl-C, in this process or in children, need it delivered."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own ledger; the tokenizer cache is shared (it is pure)."""
    monkeypatch.setenv("LVTIME_LEDGER", str(tmp_path / "lvtime-ledger.json"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LVTIME_CACHE", os.environ.get("LVTIME_TEST_CACHE", str(_shared_cache())))


def _shared_cache() -> Path:
    path = Path(__file__).resolve().parent.parent / ".pytest_cache" / "lvtime-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def small_h5(tmp_path: Path) -> Path:
    from lvtime import data, simulation

    path = tmp_path / "lv.h5"
    data.save_dataset(path, simulation.simulate(n=20, points=30, seed=1))
    return path


@pytest.fixture
def h5(tmp_path: Path) -> Path:
    """20 short series (12 steps): enough for windows, splits and tiny training runs."""
    from lvtime import data, simulation

    path = tmp_path / "lv.h5"
    data.save_dataset(path, simulation.simulate(n=20, points=12, seed=0))
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``gpu`` tests run only where CUDA is present (importing torch only if one is marked)."""
    gpu = [item for item in items if "gpu" in item.keywords]
    if not gpu:
        return
    import torch

    if not torch.cuda.is_available():
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
