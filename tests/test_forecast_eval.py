"""Forecast validation during training (issue 18 part 1): scores logged at step 0, every N
steps and the end, charged as a separate forecast would be, the best adapter kept,
early stopping, and a resumed run that logs what an uninterrupted one does."""

import json

import pytest

torch = pytest.importorskip("torch")

from tiny import finetune_cfg  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lvtime import layout, reference_table  # noqa: E402
from lvtime.cli import app  # noqa: E402
from lvtime.finetune_run import finetune, plan  # noqa: E402
from lvtime.ledger import Ledger  # noqa: E402

runner = CliRunner()
EVAL = dict(forecast_every=2, forecast_series=3, history=10, lr=1e-2)


def forecast_rows(run_dir):
    return [r for r in layout.read_metrics(run_dir) if "forecast_score" in r]


def test_scores_are_logged_at_0_every_n_and_the_end_and_charged_like_a_forecast(small_h5, tmp_path):
    out = tmp_path / "r"
    cfg = finetune_cfg(small_h5, out, steps=5, **EVAL)
    the_plan, _ = plan(cfg, Ledger())
    assert the_plan.estimate["forecast_passes"] == 4  # 0, 2, 4 and the last step, 5
    summary = finetune(cfg)
    rows = forecast_rows(out)
    assert [r["step"] for r in rows] == [0, 2, 4, 5]
    assert set(rows[0]["references"]) == set(reference_table.available())
    for name, by_species in rows[0]["reference_species"].items():  # each species' scores, as the model's
        assert set(by_species) == {"prey", "predator"} and set(by_species["prey"]) == set(rows[0]["prey"])
        mean = (by_species["prey"]["mase"] + by_species["predator"]["mase"]) / 2
        assert mean == pytest.approx(rows[0]["references"][name])
    assert {int(k): v for k, v in summary.forecast_scores.items()} == {r["step"]: r["forecast_score"] for r in rows}
    (entry,) = Ledger().read().entries  # the forecasts are part of the run's entry...
    assert entry.spent_flops == pytest.approx(summary.flops_total) and entry.spent_flops <= entry.estimated_flops
    best = min(rows, key=lambda r: r["forecast_score"])
    assert summary.best_step == best["step"] and summary.best_score == best["forecast_score"]
    # ...counted as `lvtime forecast` counts the same series with the best adapter
    args = ["forecast", str(small_h5), "--adapter", str(layout.best_adapter(out)), "--split", "val", "--limit", "3"]
    args += [
        "--history",
        "10",
        "--horizon",
        "20",
        "--references",
        "none",
        "--quiet",
        "--json",
    ]  # the window of 30 steps
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["flops"] == best["forecast_flops"]
    assert report["gap"]["model"] == pytest.approx(best["forecast_score"])


def test_best_is_the_adapter_of_the_best_score_and_loads_with_peft(small_h5, tmp_path):
    peft = pytest.importorskip("peft")
    import transformers
    from safetensors.torch import load_file

    out = tmp_path / "r"
    cfg = finetune_cfg(small_h5, out, steps=4, save_every=1, keep_checkpoints=10, **EVAL)
    summary = finetune(cfg)
    best = layout.best_adapter(out)
    ckpt = out / "checkpoints" / f"step-{summary.best_step}"
    assert load_file(best / "adapter_model.safetensors").keys() == load_file(ckpt / "adapter_model.safetensors").keys()
    for key, value in load_file(best / "adapter_model.safetensors").items():
        assert torch.equal(value, load_file(ckpt / "adapter_model.safetensors")[key]), key
    from lvtime.models import load_model

    base = load_model("tiny-qwen2", "cpu", "float32").model
    assert isinstance(peft.PeftModel.from_pretrained(base, best), transformers.PreTrainedModel | peft.PeftModel)


def test_early_stop_after_p_evaluations_without_a_better_score(small_h5, tmp_path):
    out = tmp_path / "r"
    # a learning rate too small to change a greedy forecast: every score equals the first
    cfg = finetune_cfg(small_h5, out, steps=20, forecast_every=1, forecast_series=2, history=10, lr=1e-12, early_stop=2)
    summary = finetune(cfg)
    assert [r["step"] for r in forecast_rows(out)] == [0, 1, 2]
    assert summary.stopped_early and summary.steps == 2 and summary.best_step == 0
    (entry,) = Ledger().read().entries
    assert entry.status == "completed" and entry.spent_flops == pytest.approx(summary.flops_total)
    assert entry.spent_flops < entry.estimated_flops / 5  # charged for 2 of 20 steps, not the plan
    r = runner.invoke(app, ["finetune", "--resume", str(out), "--quiet"])
    assert r.exit_code == 0 and "already complete" in r.stdout  # an early stop is an end


def test_a_stopped_and_resumed_run_logs_the_same_scores(small_h5, tmp_path):
    whole = finetune(finetune_cfg(small_h5, tmp_path / "whole", steps=4, **EVAL))
    finetune(finetune_cfg(small_h5, tmp_path / "split", steps=2, **EVAL))  # as if stopped after step 2
    split = finetune(finetune_cfg(small_h5, tmp_path / "split", steps=4, **EVAL), resume=True)
    assert split.forecast_scores == whole.forecast_scores
    assert (split.best_step, split.best_score) == (whole.best_step, whole.best_score)
    steps = [r["step"] for r in forecast_rows(tmp_path / "split")]
    assert steps == [0, 2, 4]  # logged once each, across the two invocations
