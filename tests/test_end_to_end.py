"""The whole study in miniature, the way a shell script runs it: simulate -> encode ->
baseline -> finetune -> forecast -> ledger, each a real `lvtime` process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def lvtime(*args, cwd, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "lvtime", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "LVTIME_LEDGER": ""},
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_study_in_miniature(tmp_path):
    lvtime("simulate", "lotka_volterra_data.h5", "--n", 30, "--points", 24, cwd=tmp_path)
    enc = json.loads(lvtime("encode", "--series", 27, "--tokens", "--json", cwd=tmp_path).stdout)
    assert enc["series"] == 27 and enc["n_tokens"] == len(enc["token_ids"]) > 0
    common = ["--model", "tiny-qwen2", "--history", 16, "--horizon", 4, "--limit", 3, "--quiet", "--json"]
    plan = json.loads(lvtime("baseline", *common, "--dry-run", cwd=tmp_path).stdout)
    assert plan["n_series"] == 3 and plan["estimate"] > 0
    assert not (tmp_path / "lvtime-ledger.json").exists()  # a dry run spends nothing
    base = json.loads(lvtime("baseline", *common, "--out", "runs/baseline", cwd=tmp_path).stdout)
    assert base["parse_failures"] == 0 and base["n_series"] == 3
    run = json.loads(
        lvtime(
            "finetune",
            "--model",
            "tiny-qwen2",
            "--steps",
            3,
            "--context",
            48,
            "--lr",
            "1e-3",
            "--val-series",
            2,
            "--out",
            "runs/ft",
            "--quiet",
            "--json",
            cwd=tmp_path,
        ).stdout
    )
    assert run["steps"] == 3 and run["val_loss_after"] is not None
    fc = json.loads(
        lvtime("forecast", "--adapter", "runs/ft/final", *common[2:], "--out", "runs/fc", cwd=tmp_path).stdout
    )
    assert fc["model"] == "tiny-qwen2" and fc["parse_failures"] == 0  # base model from the adapter
    assert np.load(tmp_path / "runs/fc/forecasts.npz")["forecast"].shape == (3, 4, 2)
    ledger = json.loads(lvtime("ledger", "--json", cwd=tmp_path).stdout)
    kinds = [e["kind"] for e in ledger["entries"]]
    assert kinds == ["baseline", "finetune", "forecast"]
    assert all(e["status"] == "completed" for e in ledger["entries"])
    assert ledger["spent"] == sum(e["spent_flops"] for e in ledger["entries"])
    md = lvtime("ledger", "export", "--format", "md", cwd=tmp_path).stdout
    assert "finetune ft" in md and "Remaining budget" in md
    # the same output folder again is refused, not overwritten
    again = lvtime("baseline", *common, "--out", "runs/baseline", cwd=tmp_path, check=False)
    assert again.returncode == 2 and "already exists" in again.stderr
