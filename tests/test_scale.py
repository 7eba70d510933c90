"""One alpha per species (``--scale species``, issue 18): encode and decode, the text a
forecast writes and reads, training windows, and a forecast that uses the scale its
adapter was trained with."""

import json

import numpy as np
import pytest
from tiny import TINY_CLI, finetune_cfg, one_line_error
from typer.testing import CliRunner

from lvtime import data, layout, llmtime
from lvtime.cli import app

runner = CliRunner()
PREY, PREDATOR = [2.9, 3.2, 3.8, 4.5, 5.1], [1.1, 0.9, 0.7, 0.6, 0.5]


def invoke_json(*args):
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_encode_then_decode_with_a_scale_per_species():
    inline = ["--prey", ",".join(map(str, PREY)), "--predator", ",".join(map(str, PREDATOR))]
    enc = invoke_json("encode", *inline, "--scale", "species")
    prey_alpha, predator_alpha = enc["alpha"]
    assert prey_alpha > predator_alpha * 4  # the predator's own, smaller scale
    dec = invoke_json("decode", enc["text"], "--alpha", f"{prey_alpha!r},{predator_alpha!r}")
    np.testing.assert_allclose(dec["prey"], PREY, atol=prey_alpha * 0.005)
    np.testing.assert_allclose(dec["predator"], PREDATOR, atol=predator_alpha * 0.005)
    assert dec["alpha"] == [prey_alpha, predator_alpha]
    # a shared scale is one number, as before
    assert isinstance(invoke_json("encode", *inline)["alpha"], float)
    # a fixed pair of scales is the user's; a pair without --scale species is refused
    assert invoke_json("encode", *inline, "--scale", "species", "--alpha", "1,0.1")["text"].startswith("2.90,11.00;")
    err = one_line_error(runner.invoke(app, ["encode", *inline, "--alpha", "1,0.1"]), 2)
    assert "--scale species" in err
    one_line_error(runner.invoke(app, ["decode", "1.00,2.00", "--alpha", "1,2,3"]), 2)


def test_a_forecasts_text_round_trips_with_a_scale_per_species(small_h5):
    """The prompt a forecast writes, read back as a forecast's text is: the history, each
    species to half a unit of its own scale."""
    from lvtime.generation import parse_samples, prompts_for
    from lvtime.models import tokenizer_for

    tokenizer = tokenizer_for("tiny-qwen2")
    history = data.load_dataset(small_h5).trajectories[:4, :10]
    prompts, alphas = prompts_for(history, tokenizer, 2, "species")
    np.testing.assert_allclose(alphas, llmtime.compute_alpha(history, "species"))
    texts = [[tokenizer.decode(p)] for p in prompts]
    values, failures = parse_samples(texts, alphas, 10, 2)
    assert failures == 0
    assert np.all(np.abs(values[:, 0] - history) <= alphas[:, None, :] * 0.005 + 1e-12)


def test_training_windows_are_written_with_the_runs_scale(small_h5):
    from lvtime.models import tokenizer_for
    from lvtime.windows import encode_series

    tokenizer = tokenizer_for("tiny-qwen2")
    ds = data.load_dataset(small_h5)
    idx = np.arange(3)
    for scale in ("series", "species"):
        cfg = finetune_cfg(small_h5, "unused", scale=scale)
        texts, _ = llmtime.encode_batch(ds.trajectories[idx], None, 2, scale)
        assert encode_series(ds, idx, tokenizer, cfg, None) == [tokenizer.encode(t) for t in texts]
    series_ids = encode_series(ds, idx, tokenizer, finetune_cfg(small_h5, "u"), None)
    assert series_ids != encode_series(ds, idx, tokenizer, finetune_cfg(small_h5, "u", scale="species"), None)


def test_a_forecast_uses_the_scale_its_adapter_was_trained_with(small_h5, tmp_path):
    run = tmp_path / "r"
    r = runner.invoke(
        app,
        ["finetune", str(small_h5), *TINY_CLI, "--steps", "2", "--scale", "species", "--history", "10"]
        + ["--forecast-every", "2", "--forecast-series", "3", "--out", str(run)],
    )
    assert r.exit_code == 0, r.output
    assert layout.read_config(run).scale == "species"
    for adapter in (layout.final_adapter(run), layout.best_adapter(run)):
        assert layout.read_adapter_encoding(adapter).scale == "species"
    best = min((row for row in layout.read_metrics(run) if "forecast_score" in row), key=lambda r: r["forecast_score"])
    # the same series as the run's evaluations, with no --scale: the adapter's is used, so
    # the forecast is the evaluation's, to the FLOP
    args = ["forecast", str(small_h5), "--adapter", str(layout.best_adapter(run)), "--split", "val", "--limit", "3"]
    args += ["--history", "10", "--horizon", "20", "--references", "none", "--quiet"]
    report = invoke_json(*args, "--out", str(tmp_path / "f"))
    assert report["flops"] == best["forecast_flops"]
    assert report["gap"]["model"] == pytest.approx(best["forecast_score"])
    assert layout.read_forecast_metrics(tmp_path / "f")["settings"]["scale"] == "species"
    with open(tmp_path / "f" / layout.PER_SERIES) as f:
        rows = [line.split(",") for line in f.read().splitlines()[1:]]
    prey_alpha, predator_alpha = (float(row[1]) for row in rows[:2])  # one series: prey, then predator
    assert prey_alpha != predator_alpha
    # a scale that contradicts the adapter's is refused before anything is spent
    err = one_line_error(runner.invoke(app, [*args, "--scale", "series"]), 2)
    assert "trained with --scale species" in err


def test_an_adapter_without_an_encoding_file_is_one_scale_per_series_and_a_corrupt_one_is_one_line(tmp_path):
    assert layout.read_adapter_encoding(tmp_path).scale == "series"
    (tmp_path / layout.ADAPTER_ENCODING).write_text('{"scale": "genus"}')
    from lvtime.errors import RunFolderError

    with pytest.raises(RunFolderError, match="corrupt"):
        layout.read_adapter_encoding(tmp_path)
