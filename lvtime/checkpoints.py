"""Run checkpoints: ``checkpoints/step-N/`` holds the adapter (PEFT format) and
``state.pt`` (step, optimizer, scheduler, RNG, and the run's :class:`RunState`).

Loading runs no code: ``state.pt`` holds only tensors and plain containers and is read
with ``torch.load(weights_only=True)``; anything else is refused. A checkpoint is
written to a temporary folder and renamed into place, so it is complete or absent,
and one is only called good when every tensor in it is finite.
"""

from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError

from lvtime import layout, lora
from lvtime.errors import ModelError, TrainingError, first_error
from lvtime.run_state import STATE_KEY, RunState

STATE_FILE = "state.pt"
CONFIG_KEY = "config"
MAY_CHANGE = ("steps", "out")  # what a resumed run may differ in from its checkpoints


def folder(run_dir: Path, step: int) -> Path:
    return layout.checkpoints_dir(run_dir) / f"step-{step}"


def steps(run_dir: Path) -> list[int]:
    """Steps with a checkpoint folder, oldest first."""
    root = layout.checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        number = p.name.removeprefix("step-")
        if p.is_dir() and p.name.startswith("step-") and number.isdigit():
            found.append(int(number))
    return sorted(found)


def _rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def all_finite(obj) -> bool:
    """Every floating-point tensor (and float) in a nested container is finite."""
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, float):
        return np.isfinite(obj)
    if isinstance(obj, dict):
        return all(all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(all_finite(v) for v in obj)
    return True


def save_adapter(model, folder: Path, cfg) -> None:
    """A run's adapter (final/, best/, a checkpoint's): PEFT's files and how the run's
    text was encoded (``cfg``: its FinetuneConfig)."""
    lora.save_adapter(model, folder, base_model=cfg.model)
    layout.write_adapter_encoding(folder, cfg)


def save(run_dir: Path, step: int, model, optimizer, scheduler, run_state: RunState, cfg, keep: int) -> Path:
    """Write ``checkpoints/step-N`` atomically and prune all but the newest ``keep``.

    Refuses (:class:`TrainingError`) to write non-finite weights or optimizer state.
    """
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
        STATE_KEY: run_state.to_checkpoint(),
        CONFIG_KEY: cfg.model_dump(mode="json"),  # what the state was made with (resume checks it)
    }
    if not all_finite(lora.adapter_state(model)) or not all_finite(state["optimizer"]):
        raise TrainingError(f"step {step}: weights or optimizer state are not finite; no checkpoint written")
    target = folder(run_dir, step)
    tmp = target.with_name(f".step-{step}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_adapter(model, tmp, cfg)
    torch.save(state, tmp / STATE_FILE)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)  # a checkpoint folder is complete or absent
    for old in steps(run_dir)[:-keep]:
        shutil.rmtree(folder(run_dir, old), ignore_errors=True)
    return target


def read_state(ckpt: Path) -> dict:
    """``state.pt`` of a checkpoint, loaded without running code; one-line errors."""
    path = ckpt / STATE_FILE
    if not path.is_file():
        raise ModelError(f"{ckpt}: missing {STATE_FILE}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelError(f"{path}: refused, it holds objects other than tensors and plain values") from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]  # a 0-byte file's message is empty
        raise ModelError(f"{path}: corrupt or truncated ({reason})") from None
    problem = _state_problem(state)
    if problem:
        raise ModelError(f"{path}: not an lvtime checkpoint state ({problem})")
    if not all_finite(state["optimizer"]):
        raise ModelError(f"{path}: optimizer state is not finite")
    return state


def _state_problem(state) -> str | None:
    """What is wrong with a loaded ``state.pt`` (None: every value has the type the loop
    reads), so a hand-edited file is one line, not a traceback mid-resume."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a dict"
    expect = {"step": int, "optimizer": dict, "scheduler": dict, "rng": dict, STATE_KEY: dict}
    rng = state.get("rng") if isinstance(state.get("rng"), dict) else {}
    numpy_rng = rng.get("numpy") if isinstance(rng.get("numpy"), dict) else {}
    checks = [(state.get(k), t, k) for k, t in expect.items()]
    checks += [(rng.get("torch"), torch.Tensor, "rng.torch"), (rng.get("numpy"), dict, "rng.numpy")]
    checks += [(numpy_rng.get("keys"), torch.Tensor, "rng.numpy.keys"), (numpy_rng.get("pos"), int, "rng.numpy.pos")]
    checks += [(numpy_rng.get("has_gauss"), int, "rng.numpy.has_gauss")]
    checks += [(numpy_rng.get("gauss"), (int, float), "rng.numpy.gauss")]
    for value, kind, name in checks:
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{name} is {type(value).__name__}"
    if state["step"] < 0:
        return "step is negative"
    try:
        RunState.model_validate(state[STATE_KEY])
    except ValidationError as exc:
        return f"{STATE_KEY}: {first_error(exc)}"
    return None


def config_mismatch(run_dir: Path, step: int, cfg) -> str | None:
    """How ``cfg`` differs from the config checkpoint ``step`` was made with (None: it
    does not, or the checkpoint is from before lvtime recorded it)."""
    import json

    made = read_state(folder(run_dir, step)).get(CONFIG_KEY)
    if not isinstance(made, dict):
        return None
    now = json.loads(json.dumps(cfg.model_dump(mode="json")))  # as the checkpoint stored it
    for key in sorted(set(made) | set(now)):
        if key not in MAY_CHANGE and made.get(key) != now.get(key):
            return f"{key} is {now.get(key)!r} in its config.json but {made.get(key)!r} in checkpoint step-{step}"
    return None


@dataclass
class Found:
    """The newest checkpoint that loads, and why newer ones were passed over."""

    step: int | None
    skipped: list[str]


def newest_good(run_dir: Path) -> Found:
    """Check checkpoints newest first (state and adapter tensors, read without the model)."""
    skipped = []
    for step in reversed(steps(run_dir)):
        ckpt = folder(run_dir, step)
        try:
            read_state(ckpt)
            if not all_finite(lora.read_adapter_weights(ckpt)):
                raise ModelError(f"{ckpt}: adapter weights are not finite")
        except ModelError as exc:
            skipped.append(str(exc))
            continue
        return Found(step, skipped)
    return Found(None, skipped)


def load(run_dir: Path, step: int, model, optimizer, scheduler) -> tuple[int, RunState]:
    """Restore adapter, optimizer, scheduler and RNG from ``step``; returns (step, the run's state)."""
    ckpt = folder(run_dir, step)
    state = read_state(ckpt)
    lora.load_weights(model, ckpt)
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelError(f"{ckpt}: state does not match this run ({str(exc)[:120]})") from None
    return int(state["step"]), RunState.model_validate(state[STATE_KEY])
