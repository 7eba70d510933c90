"""benchmarks/study_recipe.sh end to end at a tiny size: trains, forecasts, writes quality.json."""

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

from lvtime import data, simulation

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "study_recipe.sh"
TINY = {"MODEL": "tiny-qwen2", "STEPS": "2", "CONTEXT": "64", "DTYPE": "float32", "HEAD": "full",
        "SERIES": "3", "SAMPLES": "2", "HISTORY": "20", "HORIZON": "20"}  # fmt: skip


def _readme_recipe() -> dict[str, str]:
    """The flags of the README's recommended finetune and forecast commands."""
    text = (SCRIPT.parents[1] / "README.md").read_text()
    block = text.split("The recommended recipe", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    words = block.replace("\\\n", " ").split()
    return {w.lstrip("-"): v for w, v in itertools.pairwise(words) if w.startswith("--") and not v.startswith("--")}


def _same(config_value, flag_value: str) -> bool:
    if isinstance(config_value, int | float) and not isinstance(config_value, bool):
        return float(config_value) == float(flag_value)
    return str(config_value) == flag_value


# what the tiny run changes through the environment, so it cannot be compared
SIZED = {"model", "context", "steps", "dtype", "head", "out", "adapter", "split", "num-samples"}


def test_study_recipe_writes_quality_json(tmp_path):
    h5 = tmp_path / "lv.h5"
    data.save_dataset(h5, simulation.simulate(n=30, points=40, t_max=80, seed=1))
    env = {**os.environ, **TINY, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "out"
    r = subprocess.run(["bash", str(SCRIPT), str(h5), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    quality = json.loads((out / "quality.json").read_text())
    sampled = json.loads((out / "sampled" / "metrics.json").read_text())
    assert quality["series"] == [27, 28, 29]  # the first 3 of the test split of 30 series
    assert quality["model"]["prey"]["r2"] == sampled["metrics"]["model"]["prey"]["r2"]["median"]
    assert quality["model_greedy"]["predator"]["mae"] > 0
    assert {"last_value", "seasonal", "ode"} <= set(quality["references"])
    assert set(quality["references"]["ode"]["prey"]) == {"mae", "r2", "mase"}
    ledger = json.loads((out / "lvtime-ledger.json").read_text())
    run = next(e for e in ledger["entries"] if e["kind"] == "finetune")
    assert quality["training_flops"] == run["spent_flops"] > 0
    with open(out / "greedy" / "per_series.csv") as f:
        assert {row["series"] for row in csv.DictReader(f)} == {"27", "28", "29"}
    recipe = _readme_recipe()  # the script runs the README's recipe, flag for flag
    trained = json.loads((out / "run" / "config.json").read_text())["config"]
    for flag, value in recipe.items():
        key = flag.replace("-", "_")
        if flag not in SIZED and key in trained:
            assert _same(trained[key], value), (flag, trained[key], value)
    assert sampled["settings"]["temperature"] == float(recipe["temperature"])
    assert {"scale", "rank", "lr", "temperature"} <= set(recipe)
    again = subprocess.run(["bash", str(SCRIPT), str(h5), str(out)], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "not training again" in again.stderr  # a re-run does not train twice
    r = subprocess.run(["bash", str(SCRIPT), str(h5)], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "usage:" in r.stderr
