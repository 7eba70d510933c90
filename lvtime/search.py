"""Adaptive search on Optuna (``lvtime sweep --search random|tpe``): trials chosen by a
sampler, scored by their in-training forecasts, stopped early by a pruner, paid for out
of the ledger.

Each trial is an ordinary fine-tuning run in ``SWEEP/trial-N`` with ``--forecast-every``
(its score: the best forecast score it reached; lower is better) and its own ledger
entry. Optuna's record of the trials is a journal file in the sweep folder (or any
Optuna storage, ``--storage``), so re-running the same command resumes: finished and
pruned trials count, a trial whose process died is marked failed and replaced (its
ledger reservation settled at its estimate: never under-counted), and several worker
processes -- here (``--jobs``) or on other machines sharing the storage and the ledger --
work one search. The budget governs: no trial starts unless its estimate fits what
remains of the ledger and of ``--max-flops``.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

from lvtime import folders, layout
from lvtime.config import FinetuneConfig, SweepConfig
from lvtime.errors import Interrupted, UsageError
from lvtime.ledger import Ledger

DEFAULT_FORECAST_EVALS = 4  # evaluations per trial when the sweep does not set --forecast-every


def load_optuna():
    try:
        import optuna
    except ImportError:
        raise UsageError("--search random/tpe needs Optuna: pip install 'lvtime[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def base_of(spec: SweepConfig) -> dict[str, Any]:
    """The fixed options of every trial; forecasts during training are what trials are
    ranked (and pruned) by, so they are switched on when the sweep did not."""

    base = spec.base
    if not base.get("forecast_every"):
        steps = base.get("steps", FinetuneConfig.model_fields["steps"].default)
        base["forecast_every"] = max(1, steps // DEFAULT_FORECAST_EVALS)
    return base


def space_of(spec: SweepConfig) -> dict[str, Any]:
    """The grid's values as choices, and the file's space (which wins)."""
    space = {**spec.grid, **spec.space}
    if not space:
        raise UsageError("a search needs a space: give options several values (--lr 1e-4,1e-3) or 'space' in --config")
    return space


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for key, domain in space.items():
        if isinstance(domain, list):
            values[key] = trial.suggest_categorical(key, domain)
        elif FinetuneConfig.model_fields[key].annotation is int:
            values[key] = trial.suggest_int(key, int(domain["low"]), int(domain["high"]), log=domain.get("log", False))
        else:
            values[key] = trial.suggest_float(key, domain["low"], domain["high"], log=domain.get("log", False))
    return values


def open_study(spec: SweepConfig):
    optuna = load_optuna()
    storage = spec.storage
    if storage is None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        Path(spec.out).mkdir(parents=True, exist_ok=True)
        storage = JournalStorage(JournalFileBackend(str(Path(spec.out) / layout.SEARCH_JOURNAL)))
    sampler = (optuna.samplers.TPESampler if spec.search == "tpe" else optuna.samplers.RandomSampler)(
        seed=spec.base.get("seed", 0)
    )
    every = base_of(spec)["forecast_every"]
    pruner = {
        "none": optuna.pruners.NopPruner(),
        "asha": optuna.pruners.SuccessiveHalvingPruner(min_resource=every, reduction_factor=2),
        "hyperband": optuna.pruners.HyperbandPruner(min_resource=every, reduction_factor=2),
    }[spec.prune]
    name = f"lvtime:{Path(spec.out).resolve()}"
    return optuna.create_study(storage=storage, sampler=sampler, pruner=pruner, study_name=name, load_if_exists=True)


def trial_config(spec: SweepConfig, number: int, values: dict[str, Any]) -> FinetuneConfig:
    from pydantic import ValidationError

    from lvtime.errors import first_error

    try:
        return FinetuneConfig(**{**base_of(spec), **values, "out": str(layout.trial_dir(Path(spec.out), number))})
    except ValidationError as exc:
        raise UsageError(f"trial {number} {values}: {first_error(exc)}") from None


def spent_by(spec: SweepConfig, ledger: Ledger) -> float:
    """What the search's trials have spent or reserved, by every worker."""
    inside = str(Path(spec.out).resolve()) + "/"
    return sum(
        e.counted for e in ledger.read().entries if any(str(Path(o).resolve()).startswith(inside) for o in e.outputs)
    )


def _worker() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _dead(worker: dict | None) -> bool:
    """Whether the process that ran a trial has ended (known only for this host's)."""
    if not worker or worker.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(worker["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, TypeError):
        return False
    return False


def settle_abandoned(study, spec: SweepConfig, ledger: Ledger) -> list[int]:
    """Trials still RUNNING whose worker process has ended died with it: mark them
    failed (a new trial replaces each) and settle their stale reservations."""
    optuna = load_optuna()
    dead = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if _dead(t.user_attrs.get("worker")) and not folders.holder(layout.trial_dir(Path(spec.out), t.number)):
            study._storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL)
            dead.append(t.number)
    inside = str(Path(spec.out).resolve()) + "/"
    for e in ledger.read().entries:
        if e.is_stale() and any(str(Path(o).resolve()).startswith(inside) for o in e.outputs):
            ledger.settle(e.id)  # charged at its reservation: the ledger never under-counts
    return dead


def counted(study) -> int:
    """Trials that count toward --trials: finished, pruned, or running in some worker."""
    optuna = load_optuna()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=states))


def run(spec: SweepConfig, ledger: Ledger, allow_over_budget: bool = False) -> list[dict]:
    """Work the search until it has ``spec.trials`` trials, or the budget stops it."""
    from lvtime import sweep

    sweep.open_folder(spec)
    study = open_study(spec)
    settle_abandoned(study, spec, ledger)
    space = space_of(spec)
    while counted(study) < spec.trials:
        trial = study.ask()
        trial.set_user_attr("worker", _worker())  # how a re-run tells a dead trial from another worker's
        cfg = trial_config(spec, trial.number, suggest(trial, space))
        if _ran_before(study, trial):
            continue
        if not _fits(spec, cfg, ledger, allow_over_budget):
            study.tell(trial, state=load_optuna().trial.TrialState.FAIL)
            break
        _run_trial(spec, study, trial, cfg, ledger, allow_over_budget)
    return collect(spec, study, ledger.budget())


def _ran_before(study, trial) -> bool:
    """A configuration that a finished or pruned trial already ran (random and TPE draw a
    space of choices again and again) is not run twice: its outcome is told for this
    trial too, at no cost, and the trial counts toward --trials."""
    states = load_optuna().trial.TrialState
    for earlier in study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED)):
        if earlier.params == trial.params:
            trial.set_user_attr("same_as", earlier.number)
            if earlier.state == states.COMPLETE:
                study.tell(trial, earlier.value)
            else:
                study.tell(trial, state=states.PRUNED)
            print(f"lvtime: search: trial {trial.number} {trial.params} ran as trial {earlier.number}", file=sys.stderr)
            return True
    return False


def _fits(spec: SweepConfig, cfg: FinetuneConfig, ledger: Ledger, allow_over_budget: bool) -> bool:
    from lvtime import finetune_run

    the_plan, _ = finetune_run.plan(cfg, ledger)
    cost = the_plan.estimate["total"]
    if spec.max_flops is not None and spent_by(spec, ledger) + cost > spec.max_flops:
        print(f"lvtime: search: the next trial ({cost:.2e} FLOPs) would pass --max-flops; stopping", file=sys.stderr)
        return False
    if cost > ledger.read().totals()["remaining"] and not allow_over_budget:
        print(f"lvtime: search: the next trial ({cost:.2e} FLOPs) does not fit the budget; stopping", file=sys.stderr)
        return False
    return True


def _run_trial(spec: SweepConfig, study, trial, cfg: FinetuneConfig, ledger: Ledger, allow_over_budget: bool) -> None:
    from lvtime import finetune_run

    def report(p) -> bool:  # in-training forecast scores go to the pruner; True stops the trial
        if p.forecast_score is None or p.step == 0:
            return False
        trial.report(p.forecast_score, p.step)
        return trial.should_prune()

    label = f"sweep {Path(spec.out).name}: trial {trial.number}"
    states = load_optuna().trial.TrialState
    try:
        summary = finetune_run.finetune(
            cfg, force=True, ledger=ledger, allow_over_budget=allow_over_budget, on_progress=report, label=label
        )
    except Interrupted as exc:  # Ctrl-C / SIGTERM: the run settled its entry; the search replaces the trial
        study.tell(trial, state=states.FAIL)
        stopped = str(exc).split(";")[0]
        raise Interrupted(f"trial {trial.number} {stopped}; run the same lvtime sweep again to go on") from None
    if summary.pruned:
        study.tell(trial, state=states.PRUNED)
    else:
        study.tell(trial, summary.best_score)


def collect(spec: SweepConfig, study, budget: float) -> list[dict]:
    """The trials' results, best first, in the sweep's tables and files."""
    from lvtime import sweep

    optuna = load_optuna()
    planned = []
    for t in study.get_trials(deepcopy=False):
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            cfg = trial_config(spec, t.number, t.params)
            planned.append(sweep.PlannedRun(f"trial-{t.number}", dict(t.params), cfg, "done", 0.0))
    rows = []
    for p in planned:
        summary = layout.read_summary(Path(p.config.out))
        if summary is None:
            continue
        rows.append(sweep.result_row(p, summary, budget) | _scores(summary, Path(p.config.out)))
    rows.sort(key=lambda r: (r["forecast_mase"] is None, r["forecast_mase"]))
    sweep.write_results(Path(spec.out), rows, list(space_of(spec)))
    return rows


def _scores(summary, run_dir: Path) -> dict:
    """A trial's best forecast score, and the references' on the same series (logged at step 0)."""
    from lvtime.reference_table import LIMIT, best_naive

    refs = next((r["references"] for r in layout.read_metrics(run_dir) if "references" in r), {})
    best, best_score = best_naive(refs)
    return {
        "forecast_mase": summary.best_score,
        "best_step": summary.best_step,
        "best_reference": best,
        "best_reference_mase": best_score,
        "ode_limit_mase": refs.get(LIMIT),
        "pruned": summary.pruned,
        "stopped_early": summary.stopped_early,
    }


def worker_command(spec_path: Path, ledger: Ledger, allow_over_budget: bool) -> list[str]:
    """``lvtime sweep`` arguments of one more worker on the same search (same storage, ledger)."""
    return ["sweep", "--config", str(spec_path), "--ledger", str(ledger.path), "--quiet"] + (
        ["--allow-over-budget"] if allow_over_budget else []
    )
