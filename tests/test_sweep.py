"""`lvtime sweep` on tiny-qwen2: a 2 x 2 grid, skipping, budget refusal, --fit-budget, resume."""

import json
import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lvtime import sweep as sw
from lvtime.cli import app
from lvtime.config import SweepConfig
from lvtime.errors import BudgetError, Interrupted, UsageError
from lvtime.ledger import Ledger

runner = CliRunner()
BASE = dict(model="tiny-qwen2", steps=2, context=32, batch_size=2, val_series=2)


def spec(h5, tmp_path, **grid):
    return sw.SweepConfig(
        out=str(tmp_path / "sweep"), base={**BASE, "data": str(h5)}, grid=grid or {"rank": [2, 4], "lr": [1e-4, 1e-3]}
    )


def test_grid_runs_ranks_writes_results_then_skips(h5, tmp_path):
    args = [
        "sweep",
        str(h5),
        "--model",
        "tiny-qwen2",
        "--rank",
        "2,4",
        "--lr",
        "1e-4,1e-3",
        "--steps",
        "2",
        "--val-series",
        "2",
        "--batch-size",
        "2",
        "--context",
        "32",
        "--out",
        str(tmp_path / "sweep"),
        "--quiet",
        "--json",
    ]
    r = runner.invoke(app, args + ["--dry-run"])
    assert r.exit_code == 0, r.output
    assert [x["run"] for x in json.loads(r.stdout)["runs"]] == [
        "r2-lr0.0001",
        "r2-lr0.001",
        "r4-lr0.0001",
        "r4-lr0.001",
    ]
    assert not Ledger().read().entries
    args += ["--set", "context=32"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    losses = [x["val_loss"] for x in doc["results"]]
    assert len(losses) == 4 and losses == sorted(losses)
    assert doc["best_command"].startswith("lvtime finetune") and "--model tiny-qwen2" in doc["best_command"]
    out = tmp_path / "sweep"
    for name in ("results.csv", "results.json", "results.md", "sweep.json"):
        assert (out / name).exists()
    pytest.importorskip("matplotlib")
    assert (out / "heatmap.png").exists() and (out / "curves.png").exists()
    entries = Ledger().read().entries
    assert len(entries) == 4 and all(e.label.startswith("sweep sweep: ") for e in entries)
    r = runner.invoke(app, args)
    assert r.exit_code == 0
    assert all(x["state"] == "done" for x in json.loads(r.stdout)["plan"]["runs"])
    assert len(Ledger().read().entries) == 4  # nothing re-run
    r = runner.invoke(app, [*args, "--print-commands"])
    assert r.exit_code == 0 and json.loads(r.stdout) == [] and "nothing left to run" in r.stderr


def test_grid_over_budget_is_refused_or_fitted(h5, tmp_path):
    s = spec(h5, tmp_path)
    planned, summary = sw.plan(s, Ledger())
    one = planned[0].cost
    Ledger().init(2.5 * one)
    planned, summary = sw.plan(s, Ledger())
    with pytest.raises(BudgetError):
        sw.check_budget(planned, summary, allow_over_budget=False)
    planned, summary = sw.plan(s, Ledger(), fit_budget=True)
    assert [p.planned for p in planned] == [True, True, False, False]
    rows = sw.run(s, planned, Ledger())
    assert len(rows) == 2 and Ledger().read().totals()["remaining"] >= 0


def test_interrupted_sweep_resumes(h5, tmp_path):
    s = spec(h5, tmp_path, rank=[2, 4])
    s.base.update(steps=4, save_every=1)
    planned, _ = sw.plan(s, Ledger())

    calls = {"n": 0}

    def interrupt_second_run(p):
        if p.step == 2:
            calls["n"] += 1
            if calls["n"] == 2:  # the second configuration, halfway
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        sw.run(s, planned, Ledger(), on_progress=interrupt_second_run)
    planned, _ = sw.plan(s, Ledger())
    assert [p.state for p in planned] == ["done", "resume"]
    rows = sw.run(s, planned, Ledger())
    assert len(rows) == 2 and all(r["steps"] == 4 for r in rows)


def test_config_file_validation(tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"grid": {"nonsense": [1]}}))
    with pytest.raises(UsageError, match="not a finetune option"):
        sw.load_sweep_config(bad)
    bad.write_text("{")
    with pytest.raises(UsageError, match="invalid JSON"):
        sw.load_sweep_config(bad)


def test_finetune_command_reproduces_config():
    from lvtime.config import FinetuneConfig

    cmd = sw.finetune_command(FinetuneConfig(data="d.h5", model="tiny-qwen2", rank=8, lr=1e-4))
    assert cmd == "lvtime finetune d.h5 --model tiny-qwen2 --rank 8 --lr 0.0001 --out runs/best"


def test_set_validates_option_names(h5, tmp_path):
    r = runner.invoke(app, ["sweep", str(h5), "--rank", "2", "--set", "bogus=1", "--dry-run"])
    assert r.exit_code == 2 and "--set" in r.output
    r = runner.invoke(app, ["sweep", str(h5), "--rank", "2", "--config", "x.json", "--dry-run"])
    assert r.exit_code == 2


def test_the_runs_forecast_series_is_their_own_and_ranks_them_unless_rank_series_says(h5, tmp_path):
    s = spec(h5, tmp_path, rank=[2, 4])
    s = s.model_copy(update={"base": {**s.base, "forecast_series": 3}})
    configs = [cfg for _, _, cfg in sw.expand(s)]
    assert {cfg.forecast_series for cfg in configs} == {3}
    assert {sw.forecast_settings(s, cfg).limit for cfg in configs} == {3}
    s = s.model_copy(update={"rank_series": 5})  # the ranking forecast alone
    assert {sw.forecast_settings(s, cfg).limit for cfg in configs} == {5}
    assert {cfg.forecast_series for _, _, cfg in sw.expand(s)} == {3}


def test_a_sweep_file_from_before_the_rename_reads_as_it_did(h5, tmp_path):
    old = {"forecast_series": 4, "base": {"data": str(h5)}, "grid": {"rank": [2, 4]}, "out": str(tmp_path / "s")}
    s = SweepConfig.model_validate(old)
    assert s.rank_series == 4 and {cfg.forecast_series for _, _, cfg in sw.expand(s)} == {4}
    kept = SweepConfig.model_validate({**old, "base": {"data": str(h5), "forecast_series": 2}})
    assert kept.rank_series == 4 and kept.base["forecast_series"] == 2


def test_a_runs_ranking_forecast_is_planned_with_the_runs_scale(h5, tmp_path):
    from lvtime import forecast_run

    s = spec(h5, tmp_path, scale=["series", "species"]).model_copy(update={"rank_by": "forecast"})
    planned, _ = sw.plan(s, Ledger())
    for p in planned:  # what the forecast after training, with the run's adapter, will cost
        settings = sw.forecast_settings(s, p.config).model_copy(update={"adapter": None})
        assert settings.scale == p.config.scale
        assert p.forecast_cost == forecast_run.plan(settings, Ledger())["estimate"]
    assert planned[0].forecast_cost != planned[1].forecast_cost  # the texts differ in length


def test_rank_by_forecast_charges_and_orders_by_forecast_score(h5, tmp_path):
    s = spec(h5, tmp_path, rank=[2, 4])
    s = s.model_copy(update={"rank_by": "forecast", "rank_series": 2})
    plain = spec(h5, tmp_path, rank=[2, 4])
    planned, summary = sw.plan(s, Ledger())
    plain_planned, plain_summary = sw.plan(plain, Ledger())
    assert all(p.forecast_cost > 0 for p in planned)
    assert summary["sweep_total"] == pytest.approx(plain_summary["sweep_total"] + sum(p.forecast_cost for p in planned))
    rows = sw.run(s, planned, Ledger())
    scores = [r["forecast_mase"] for r in rows]
    assert scores == sorted(scores) and all(r["ode_limit_mase"] is not None for r in rows)
    kinds = [e.kind for e in Ledger().read().entries]
    assert kinds == ["finetune", "forecast", "finetune", "forecast"]
    assert all(e.status == "completed" for e in Ledger().read().entries)
    # nothing left to do: a re-plan is free
    again, summary = sw.plan(s, Ledger())
    assert [p.state for p in again] == ["done", "done"] and summary["sweep_total"] == 0


def test_best_command_reproduces_every_finetune_option(h5, tmp_path):
    import shlex

    from lvtime import data, simulation
    from lvtime.config import FinetuneConfig

    extra = tmp_path / "extra.h5"
    data.save_dataset(extra, simulation.simulate(n=3, points=data.load_dataset(h5).n_points, seed=5))
    cfg = FinetuneConfig(
        data=str(h5), model="tiny-qwen2", out=str(tmp_path / "x"), rank=3, lora_alpha=5.5, lora_dropout=0.1,
        targets=["q_proj", "k_proj"], lr=0.0123456789, steps=7, batch_size=6, grad_accum=2, context=40,
        weight_decay=0.01, schedule="cosine", warmup=2, clip_grad=0.5, seed=3, decimals=3, alpha_mode="global",
        scale="species", alpha_from="history", history=2, window_starts="steps", split_scheme="random", train_series=5,
        loss_on="horizon", extra_train=str(extra),
        val_series=2,
        eval_every=3, save_every=2, keep_checkpoints=3, head="numeric", device="cpu", dtype="float32", compile=True,
        convention="exact", forecast_every=3, forecast_series=2, forecast_samples=2, forecast_batch=4, early_stop=2,
    )  # fmt: skip
    defaults = FinetuneConfig()
    assert all(getattr(cfg, f) != getattr(defaults, f) for f in FinetuneConfig.model_fields)  # every field differs
    command = shlex.split(sw.finetune_command(cfg, out=str(tmp_path / "x")))
    assert command[:2] == ["lvtime", "finetune"]
    r = runner.invoke(app, [*command[1:], "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["config"] == cfg.model_dump(mode="json")


def _losses(rows):
    return {r["run"]: r["val_loss"] for r in rows}


@pytest.mark.slow
def test_jobs_2_gives_the_results_of_jobs_1(h5, tmp_path):
    one = spec(h5, tmp_path / "one")
    two = spec(h5, tmp_path / "two")
    sequential = sw.run(one, sw.plan(one, Ledger())[0], Ledger())
    parallel = sw.run(two, sw.plan(two, Ledger())[0], Ledger(), jobs=2)
    assert len(parallel) == 4
    assert _losses(parallel) == pytest.approx(_losses(sequential), rel=1e-5)
    entries = Ledger().read().entries
    assert len(entries) == 8 and all(e.status == "completed" for e in entries)
    # the same labels as a sequential sweep, so the ledger reads the same
    assert sorted(e.label.split(": ")[1] for e in entries[4:]) == sorted(_losses(sequential))
    assert (tmp_path / "two" / "sweep" / "logs" / "r2-lr0.0001.log").exists()


@pytest.mark.slow
def test_printed_commands_run_by_a_shell_are_collected_without_rerunning(h5, tmp_path):
    import subprocess
    import sys

    # one configuration (each printed command is a process that loads torch): finetune && forecast
    args = ["sweep", str(h5), "--model", "tiny-qwen2", "--rank", "2", "--lr", "1e-3", "--steps", "2"]
    args += ["--val-series", "2", "--batch-size", "2", "--set", "context=32", "--rank-by", "forecast"]
    args += ["--forecast-series", "2"]
    args += ["--out", str(tmp_path / "sweep")]
    r = runner.invoke(app, [*args, "--print-commands"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and " && lvtime forecast " in lines[0]
    assert not Ledger().read().entries  # printing runs nothing; it records the sweep in its folder
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == [".lvtime-folder", "sweep.json"]
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    for line in lines:
        subprocess.run(["bash", "-c", line + " --quiet"], check=True, env=env, capture_output=True)
    spent = len(Ledger().read().entries)
    assert spent == 2
    r = runner.invoke(app, [*args, "--quiet", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [p["state"] for p in doc["plan"]["runs"]] == ["done"]
    assert len(doc["results"]) == 1 and doc["results"][0]["forecast_mase"] is not None
    assert len(Ledger().read().entries) == spent  # nothing ran again


@pytest.mark.slow
def test_ctrl_c_stops_every_job_and_leaves_them_resumable(h5, tmp_path, monkeypatch):
    import time

    from lvtime import jobs

    s = spec(h5, tmp_path, rank=[2, 4])
    s.base.update(steps=400, save_every=1)
    real_sleep = time.sleep

    def interrupt_once_both_train(seconds):
        real_sleep(seconds)
        entries = Ledger().read().entries
        if len(entries) == 2 and all(list((tmp_path / "sweep" / p).glob("checkpoints/step-*")) for p in ("r2", "r4")):
            raise KeyboardInterrupt

    monkeypatch.setattr(jobs.time, "sleep", interrupt_once_both_train)
    with pytest.raises(KeyboardInterrupt):
        sw.run(s, sw.plan(s, Ledger())[0], Ledger(), jobs=2)
    entries = Ledger().read().entries
    assert [e.status for e in entries] == ["interrupted", "interrupted"]
    monkeypatch.setattr(jobs.time, "sleep", real_sleep)
    again, _ = sw.plan(s, Ledger())
    assert [p.state for p in again] == ["resume", "resume"]


def test_stopping_jobs_reaches_children_that_ignore_ctrl_c():
    # A sweep started in the background of a non-interactive shell hands its children
    # SIGINT ignored; stopping must still reach them.
    import subprocess
    import sys

    from lvtime import jobs

    code = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ready', flush=True)"
    code += "; time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    jobs._interrupt_and_wait([child])
    assert child.returncode == -signal.SIGTERM


def test_each_job_gets_its_gpu_and_its_share_of_the_cores():
    from lvtime import jobs

    envs = [jobs.slot_env(slot, 3, ["0", "1"], cpus=8) for slot in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]
    assert {e["OMP_NUM_THREADS"] for e in envs} == {"2"}
    assert "CUDA_VISIBLE_DEVICES" not in jobs.slot_env(0, 4, [], cpus=2)
    assert jobs.slot_env(0, 4, [], cpus=2)["OMP_NUM_THREADS"] == "1"


def test_step_0s_forecast_is_charged_once_per_sweep_and_logged_for_every_run(small_h5, tmp_path):
    """Every run of a sweep starts from an all-zero adapter: the first run's step-0
    evaluation is the others' too (same settings), so only the first is charged for it."""
    from lvtime import layout

    base = {**BASE, "data": str(small_h5), "forecast_every": 2, "forecast_series": 2, "history": 10, "steps": 2}
    s = sw.SweepConfig(out=str(tmp_path / "sweep"), base=base, grid={"lr": [1e-4, 1e-3, 1e-2]})
    lg = Ledger()
    planned, _ = sw.plan(s, lg)
    sw.run(s, planned, lg)
    firsts = [next(r for r in layout.read_metrics(Path(p.config.out)) if "forecast_score" in r) for p in planned]
    assert [r.get("reused", False) for r in firsts] == [False, True, True]
    assert (
        len({json.dumps({k: r[k] for k in ("forecast_score", "prey", "predator", "references")}) for r in firsts}) == 1
    )
    spent = [e.spent_flops for e in lg.read().entries]
    assert spent[1] == spent[2] == pytest.approx(spent[0] - firsts[0]["forecast_flops"], rel=1e-12)
    # a run outside any sweep computes its own
    from tiny import finetune_cfg

    from lvtime.finetune_run import finetune

    finetune(finetune_cfg(small_h5, tmp_path / "alone", **{k: v for k, v in base.items() if k != "data"}))
    alone = next(r for r in layout.read_metrics(tmp_path / "alone") if "forecast_score" in r)
    assert "reused" not in alone and alone["forecast_score"] == firsts[0]["forecast_score"]


def pruned_row(**kw) -> dict:
    """A search's row for a trial pruned before its final validation pass."""
    row = dict(run="trial-2", lr=0.0029, extra_train=None, val_loss_0=1.2, val_loss=None, steps=30, flops=1.35e14,
               percent_budget=0.135, wall_s=575.7, forecast_mase=3.76, best_reference_mase=0.92, ode_limit_mase=0.015,
               pruned=True)  # fmt: skip
    return {**row, **kw}


def test_a_drawn_learning_rate_is_printed_short(tmp_path, capsys):
    from lvtime.cli.sweeps import _print_results

    _print_results([pruned_row(lr=0.0024156148693761288)], ["lr"], str(tmp_path), "forecast")
    printed = capsys.readouterr().out
    assert " 0.002416 " in printed and "0.0024156" not in printed


@pytest.mark.parametrize("width", [10_000, 60])  # a pipe, and a terminal too narrow for the optional columns
def test_a_pruned_trial_without_a_final_validation_loss_is_printed_and_written(tmp_path, capsys, monkeypatch, width):
    from lvtime.cli.output import console
    from lvtime.cli.sweeps import _print_results

    monkeypatch.setattr(console.real(), "width", width)
    rows = [pruned_row(), pruned_row(run="trial-3", extra_train="more.h5")]
    _print_results(rows, ["lr", "extra_train"], str(tmp_path), "forecast")  # raised TypeError on the None
    printed = capsys.readouterr().out
    assert "trial-2 (pruned)" in printed and "trial-3 (pruned)" in printed and "None" not in printed
    sw.write_results(tmp_path, rows, ["lr", "extra_train"])
    table = (tmp_path / "results.md").read_text().splitlines()
    assert "None" not in "\n".join(table)  # an absent value is '-'
    assert table[2].split(" | ")[2:5] == ["-", "1.2", "-"]  # extra_train, val_loss_0, val_loss
    assert table[0].endswith("| pruned |") and table[2].endswith("| True |")


def test_a_hostile_value_stays_in_its_results_md_cell(tmp_path):
    hostile = "a|b\nc.h5"
    sw.write_results(tmp_path, [pruned_row(extra_train=hostile)], ["lr", "extra_train"])
    table = (tmp_path / "results.md").read_text().splitlines()
    assert len(table) == 3  # header, rule, one row: the newline did not start a row
    assert table[2].replace("\\|", "").count("|") == table[0].count("|")  # nor did '|' start a cell
    assert "a\\|b\\x0ac.h5" in table[2]
