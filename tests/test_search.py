"""Adaptive search on Optuna (issue 18 part 2): the pruner stops a hopeless trial and it is
charged what it spent; the budget caps the search; workers share one study; a killed
worker's trial is replaced and its reservation settled; without Optuna, one line."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("torch")

from tiny import TINY_CLI, finetune_cfg  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lvtime import folders, layout, search  # noqa: E402
from lvtime.cli import app  # noqa: E402
from lvtime.config import SweepConfig  # noqa: E402
from lvtime.errors import UsageError  # noqa: E402
from lvtime.finetune_run import plan  # noqa: E402
from lvtime.ledger import Ledger  # noqa: E402
from lvtime.reference_table import LIMIT, is_naive  # noqa: E402

runner = CliRunner()
BASE = dict(steps=6, forecast_every=2, forecast_series=3, history=10)


def spec(h5, tmp_path, **kw) -> SweepConfig:
    base = finetune_cfg(h5, "x", **BASE).model_dump(exclude={"out"})
    return SweepConfig(out=str(tmp_path / "s"), base=base, **{"search": "random", **kw})


def trials(s: SweepConfig):
    return search.open_study(s).get_trials(deepcopy=False)


def test_the_pruner_stops_a_hopeless_learning_rate_and_it_pays_only_what_it_spent(small_h5, tmp_path):
    s = spec(small_h5, tmp_path, trials=2, prune="asha", grid={"lr": [1e-2, 1e-12]})
    study = search.open_study(s)
    study.enqueue_trial({"lr": 1e-2})  # a learning rate that moves the forecasts
    study.enqueue_trial({"lr": 1e-12})  # one that cannot: its scores stay where they started
    rows = search.run(s, Ledger())
    states = {t.number: t.state for t in trials(s)}
    assert states == {0: optuna.trial.TrialState.COMPLETE, 1: optuna.trial.TrialState.PRUNED}
    hopeless = layout.read_summary(layout.trial_dir(tmp_path / "s", 1))
    assert hopeless.pruned and hopeless.steps < 6  # stopped before its last step
    entry = next(e for e in Ledger().read().entries if e.outputs == [str(layout.trial_dir(tmp_path / "s", 1))])
    assert entry.spent_flops == pytest.approx(hopeless.flops_total) and entry.spent_flops < entry.estimated_flops
    assert [r["run"] for r in rows] == ["trial-0", "trial-1"] and rows[1]["pruned"]
    refs = next(r["references"] for r in layout.read_metrics(layout.trial_dir(tmp_path / "s", 0)) if "references" in r)
    assert rows[0]["ode_limit_mase"] == refs[LIMIT]  # the references on the trial's series, beside its score
    assert rows[0]["best_reference_mase"] == min(v for k, v in refs.items() if is_naive(k))


def test_a_search_whose_budget_fits_three_trials_runs_three(small_h5, tmp_path):
    s = spec(small_h5, tmp_path, trials=10, space={"lr": {"low": 1e-3, "high": 1e-2}})
    one, _ = plan(search.trial_config(s, 0, {"lr": 1e-3}), Ledger())
    capped = s.model_copy(update={"max_flops": 3.5 * one.estimate["total"]})
    search.run(capped, Ledger())
    done = [t for t in trials(capped) if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3 and len(Ledger().read().entries) == 3
    assert search.spent_by(capped, Ledger()) <= capped.max_flops


def test_a_configuration_already_run_is_not_run_again_and_counts_as_a_trial(small_h5, tmp_path, capsys):
    s = spec(small_h5, tmp_path, trials=5, grid={"lr": [1e-3, 1e-2]})
    rows = search.run(s, Ledger())
    done = trials(s)
    assert len(done) == 5 and all(t.state == optuna.trial.TrialState.COMPLETE for t in done)
    ran = [t for t in done if "same_as" not in t.user_attrs]
    assert sorted(t.params["lr"] for t in ran) == [1e-3, 1e-2]  # each configuration once...
    assert len(Ledger().read().entries) == 2 and len(rows) == 2  # ...and paid once
    for t in done:  # a repeat is told its first run's score
        assert t.value == done[t.user_attrs.get("same_as", t.number)].value
    assert "ran as trial" in capsys.readouterr().err


def test_a_stopped_trial_says_to_rerun_the_sweep_and_is_replaced(small_h5, tmp_path, monkeypatch):
    from lvtime import finetune_run
    from lvtime.errors import Interrupted

    def stopped(*args, **kw):
        raise Interrupted("stopped after step 3 of 6; checkpoint saved. Resume with: lvtime finetune --resume x")

    monkeypatch.setattr(finetune_run, "finetune", stopped)
    s = spec(small_h5, tmp_path, trials=2, grid={"lr": [1e-3, 1e-2]})
    with pytest.raises(Interrupted, match="trial 0 stopped after step 3 of 6; run the same lvtime sweep again"):
        search.run(s, Ledger())
    assert [t.state for t in trials(s)] == [optuna.trial.TrialState.FAIL]  # not counted: a re-run replaces it


def test_a_search_forecasts_the_series_the_sweep_was_given(small_h5, tmp_path):
    s = SweepConfig(out=str(tmp_path / "s"), search="tpe", base={"data": str(small_h5), "forecast_series": 3})
    assert search.trial_config(s, 0, {}).forecast_series == 3


def test_a_search_without_optuna_says_what_to_install(small_h5, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(UsageError, match=r"pip install 'lvtime\[search\]'"):
        search.load_optuna()
    r = runner.invoke(app, ["sweep", str(small_h5), *TINY_CLI, "--lr", "1e-3,1e-2", "--search", "tpe", "--dry-run"])
    assert r.exit_code == 2 and "lvtime[search]" in r.stderr


def _sweep_args(h5, out, trials):
    """A search of ``lr`` on a range: no two trials draw the same configuration."""
    space = out.parent / "space.json"
    space.write_text(json.dumps({"space": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}}}))
    args = ["sweep", str(h5), *TINY_CLI, "--steps", "4", "--forecast-every", "2", "--forecast-series", "2"]
    return (
        args
        + ["--history", "10", "--config", str(space), "--search", "random", "--trials", str(trials)]
        + [
            "--out",
            str(out),
        ]
    )


@pytest.mark.slow
def test_two_workers_complete_n_trials_once_each_and_the_ledger_adds_up(small_h5, tmp_path):
    r = runner.invoke(app, [*_sweep_args(small_h5, tmp_path / "s", 4), "--jobs", "2", "--json"])
    assert r.exit_code == 0, r.output
    s = SweepConfig.model_validate_json((tmp_path / "s" / layout.SWEEP).read_text())
    finished = [t for t in trials(s) if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.number for t in finished) == [0, 1, 2, 3]
    entries = Ledger().read().entries
    assert sorted(e.outputs[0] for e in entries) == sorted(str(layout.trial_dir(tmp_path / "s", n)) for n in range(4))
    assert Ledger().read().totals()["spent"] == pytest.approx(sum(e.spent_flops for e in entries))
    assert len(json.loads(r.stdout)["results"]) == 4


@pytest.mark.slow
def test_a_killed_worker_leaves_nothing_stuck_and_a_rerun_completes_the_search(small_h5, tmp_path):
    out = tmp_path / "s"
    args = [sys.executable, "-m", "lvtime", *_sweep_args(small_h5, out, 2)]
    args[args.index("--steps") + 1] = "40"  # long enough to be killed mid-trial
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        if folders.holder(layout.trial_dir(out, 0)) and layout.read_metrics(layout.trial_dir(out, 0)):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(e.status == "running" for e in Ledger().read().entries)  # the dead worker's reservation
    r = runner.invoke(app, [*args[3:], "--quiet"])  # the same search again (another would be refused)
    assert r.exit_code == 0, r.output
    assert not any(e.status == "running" for e in Ledger().read().entries)
    s = SweepConfig.model_validate_json((out / layout.SWEEP).read_text())
    states = [t.state for t in trials(s)]
    assert states[0] == optuna.trial.TrialState.FAIL  # replaced...
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2  # ...and the search completed
    assert os.path.exists(out / layout.SEARCH_JOURNAL)


def test_a_short_tpe_search_models_its_trials_instead_of_sampling_them_all_at_random(small_h5, tmp_path):
    """Optuna's TPE samples its first 10 trials at random: a search of 10 or fewer trials
    would be a random search under another name. lvtime starts modelling after a third."""

    def distance(trial):  # the best lr is 1e-3
        return abs(math.log10(trial.suggest_float("lr", 1e-5, 1e-1, log=True)) + 3)

    found = {}
    for kind in ("random", "tpe"):
        s = spec(small_h5, tmp_path / kind, trials=9, search=kind, space={"lr": {"low": 1e-5, "high": 1e-1}})
        study = search.open_study(s)
        study.optimize(distance, n_trials=s.trials)
        found[kind] = [t.params["lr"] for t in study.trials]
    assert found["tpe"][:3] == found["random"][:3]  # the startup trials: the same random draws
    assert found["tpe"][3:] != found["random"][3:]  # then TPE chooses
    assert search.startup_trials(9) == 3 and search.startup_trials(100) == 10 and search.startup_trials(2) == 1


def test_options_chosen_together_reach_each_trial_and_the_results_as_options(small_h5, tmp_path):
    s = spec(small_h5, tmp_path, trials=2, space={"context+batch_size": [[32, 2], [64, 1]]})
    study = search.open_study(s)
    for label in ("32, 2", "64, 1"):
        study.enqueue_trial({"context+batch_size": label})
    rows = search.run(s, Ledger())
    ran = {(r["context"], r["batch_size"]) for r in rows}
    assert ran == {(32, 2), (64, 1)}  # each choice's values together, never 32 with 1
    for r in rows:
        cfg = layout.read_config(tmp_path / "s" / r["run"])
        assert (cfg.context, cfg.batch_size) == (r["context"], r["batch_size"])
    header = (tmp_path / "s" / "results.md").read_text().splitlines()[0]
    assert "| context | batch_size |" in header


@pytest.mark.parametrize(
    ("space", "says"),
    [
        ({"context+batch_size": [[32]]}, "each a list of 2 values (context, batch_size)"),
        ({"context+batch_size": [32, 2]}, "each a list of 2 values"),
        ({"context+batch_size": []}, "each a list of 2 values"),
        ({"context+nope": [[32, 2]]}, "'context+nope' is not a finetune option (or options joined by '+')"),
        ({"context+batch_size": [[32, 0]]}, "batch_size: 0"),
        ({"context": [32, 64], "context+batch_size": [[32, 2]]}, "'context' is searched twice"),
    ],
)
def test_a_joint_choice_that_does_not_fit_its_options_is_refused_by_name(space, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        SweepConfig(search="tpe", space=space)


def test_two_joint_choices_that_would_share_an_optuna_label_are_refused():
    # A joint choice is drawn by its values joined with ", "; these two would both read "a, b, c",
    # and a trial drawing one could run the other.
    with pytest.raises(ValueError, match=re.escape("choices ['a, b', 'c'] and ['a', 'b, c'] read the same")):
        SweepConfig(search="tpe", space={"extra_train+model": [["a, b", "c"], ["a", "b, c"]]})


def test_a_joint_choice_given_twice_is_kept_once():
    s = SweepConfig(search="tpe", space={"context+batch_size": [[32, 2], [32.0, 2], [64, 1]]})
    assert s.space["context+batch_size"] == [[32, 2], [64, 1]]


@pytest.mark.parametrize(
    ("scores", "best"),
    [
        ({0: 3.8, 24: 5.1}, (24, 5.1)),  # pruned after making forecasts worse: not ranked at the zero-shot 3.8
        ({0: 4.0, 24: 3.9, 48: 4.2}, (24, 3.9)),
        ({0: 4.0}, (0, 4.0)),  # never trained: the run's own best
    ],
)
def test_a_trial_is_ranked_by_its_best_score_once_trained(scores, best):
    best_step = min(scores, key=scores.get)
    s = layout.RunSummary(run="t", model="m", steps=48, forecast_scores=scores, best_step=best_step,
                          best_score=scores[best_step])  # fmt: skip
    assert search.trained_best(s) == best


def test_a_search_costs_its_first_joint_choice_and_a_space_key_wins_over_the_same_grid_key():
    s = SweepConfig(
        search="tpe", grid={"lr": [1e-3, 1e-2]}, space={"lr": [1e-4], "context+batch_size": [[64, 1], [32, 2]]}
    )
    assert search.first_options(s) == {"lr": 1e-4, "context": 64, "batch_size": 1}


def test_the_report_page_shows_a_joint_choice_as_one_column_per_option(tmp_path):
    from lvtime.report_page import _sweeps

    row = {"run": "trial-0", "context": 32, "batch_size": 2, "forecast_mase": 1.5, "flops": 1e10, "out": "s/trial-0"}
    doc = {"path": "s", "search": "tpe", "rank_by": "forecast", "grid": {"context+batch_size": [[32, 2]]},
           "results": [row], "figures": {}, "notes": []}  # fmt: skip
    page = _sweeps([doc], tmp_path, 1e17)
    assert ">context<" in page and ">batch_size<" in page and "context+batch_size" not in page
    assert ">32<" in page and ">2<" in page
