"""Adaptive search on Optuna (``lvtime sweep --search random|tpe``): trials chosen by a
sampler, scored by their in-training forecasts, stopped early by a pruner, paid for out
of the ledger.

Each trial is an ordinary fine-tuning run in ``SWEEP/trial-N`` with ``--forecast-every``
(its score: the best forecast score it reached after step 0; lower is better) and its own ledger
entry. Optuna's record of the trials is a journal file in the sweep folder (or any
Optuna storage, ``--storage``), so re-running the same command resumes: finished and
pruned trials count, a trial whose process died is marked failed and replaced (its
ledger reservation settled at its estimate: never under-counted), and several worker
processes -- here (``--jobs``) or on other machines sharing the storage and the ledger --
work one search. The budget governs: no trial starts unless its estimate fits what
remains of the ledger and of ``--max-flops``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from lvtime import folders, layout, shell
from lvtime.config import JOINT, FinetuneConfig, SweepConfig, choice_label, option_names
from lvtime.errors import BudgetError, Interrupted, LvtimeError, UsageError
from lvtime.ledger import Ledger

DEFAULT_FORECAST_EVALS = 4  # evaluations per trial when the sweep does not set --forecast-every


def load_optuna():
    try:
        import optuna
    except ImportError:
        raise UsageError("--search random/tpe needs Optuna: pip install 'lvtime[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


STORAGE_TIMEOUT_S = 5  # how long reaching a database server may take before it counts as unreachable
STORAGE_EXAMPLE = "sqlite:///search.db or postgresql+psycopg2://user:password@host/db"


def check_storage(spec: SweepConfig) -> None:
    """A ``--storage`` URL that Optuna can use, and its server reached, before any folder
    or ledger entry is made; each problem is one line. (The default journal file is
    checked when the study opens: it lives in the sweep folder.)"""
    if spec.storage is None:
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    what = f"--storage {spec.storage!r}"
    try:
        url = make_url(spec.storage)
        dialect = url.get_dialect()
    except NoSuchModuleError:  # (an ArgumentError too: first)
        raise UsageError(f"{what}: unknown database {url.drivername!r} (e.g. {STORAGE_EXAMPLE})") from None
    except ArgumentError:
        raise UsageError(f"{what}: not a database URL (e.g. {STORAGE_EXAMPLE})") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise UsageError(
            f"{what}: its driver (module {exc.name}) is not installed: install it, or name one that is "
            "(postgresql+psycopg2://...)"
        ) from None
    if url.get_backend_name() == "sqlite":
        _check_sqlite(what, url.database)
        return
    engine = create_engine(url, connect_args=_timeout_args(url))
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:160]
        raise UsageError(f"{what}: cannot reach the database ({reason})") from None
    finally:
        engine.dispose()


def _check_sqlite(what: str, database: str | None) -> None:
    if not database or database == ":memory:":
        raise UsageError(f"{what}: name a database file (an in-memory one is not shared), e.g. sqlite:///search.db")
    parent = Path(database).parent
    if not parent.is_dir():
        raise UsageError(f"{what}: the folder {parent} does not exist")


def _timeout_args(url) -> dict:
    backend = url.get_backend_name()
    return {"connect_timeout": STORAGE_TIMEOUT_S} if backend in ("postgresql", "mysql") else {}


def check_same_search(spec: SweepConfig) -> None:
    """A search re-run on a folder must be the same search: trials of two spaces (or
    samplers, or fixed options) in one study would be ranked together. The difference is
    named."""
    from lvtime.errors import RunFolderError

    path = Path(spec.out) / layout.SWEEP
    if not path.exists():
        return
    try:
        old = SweepConfig.model_validate(layout.read_json(path))
    except (RunFolderError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise UsageError(f"{path}: not a sweep lvtime wrote ({reason}); choose another --out") from None
    for key, before, now in (
        ("search", old.search, spec.search),
        ("space", {**old.grid, **old.space}, {**spec.grid, **spec.space}),
        ("fixed options", base_of(old), base_of(spec)),
        ("prune", old.prune, spec.prune),
    ):
        if before != now:
            raise UsageError(
                f"{spec.out}: holds a search with {key} {_differ(before, now)}; a search cannot change its space "
                "or settings: choose another --out (or run the same search again)"
            )


def _differ(before: Any, now: Any) -> str:
    if isinstance(before, dict) and isinstance(now, dict):
        key = next(k for k in sorted({*before, *now}, key=str) if before.get(k) != now.get(k))
        return f"{key}={before.get(key, '(unset)')!r}, not {now.get(key, '(unset)')!r}"
    return f"{before!r}, not {now!r}"


def base_of(spec: SweepConfig) -> dict[str, Any]:
    """The fixed options of every trial; forecasts during training are what trials are
    ranked (and pruned) by, so they are switched on when the sweep did not."""

    base = dict(spec.base)
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
    """A trial's finetune options, drawn from the space."""
    params = {}
    for key, domain in space.items():
        if JOINT in key:  # Optuna's choices are plain values: a joint choice is drawn by its label
            params[key] = trial.suggest_categorical(key, [choice_label(c) for c in domain])
        elif isinstance(domain, list):
            params[key] = trial.suggest_categorical(key, domain)
        elif FinetuneConfig.model_fields[key].annotation is int:
            params[key] = trial.suggest_int(key, int(domain["low"]), int(domain["high"]), log=domain.get("log", False))
        else:
            params[key] = trial.suggest_float(key, domain["low"], domain["high"], log=domain.get("log", False))
    return options_of(space, params)


def options_of(space: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A trial's Optuna parameters as finetune options: a joint choice's label becomes
    its options' values."""
    values = {}
    for key, value in params.items():
        if JOINT in key:
            choice = next(c for c in space[key] if choice_label(c) == value)
            values.update(zip(key.split(JOINT), choice, strict=True))
        else:
            values[key] = value
    return values


def first_options(spec: SweepConfig) -> dict[str, Any]:
    """The search's first configuration: each choice's first value (a range's high end)."""
    values = {}
    for key, domain in space_of(spec).items():
        first = domain[0] if isinstance(domain, list) else domain["high"]
        values.update(zip(key.split(JOINT), first if JOINT in key else [first], strict=True))
    return values


def startup_trials(trials: int) -> int:
    """Trials TPE samples at random before it models the others: a third of the search,
    at most Optuna's 10. (Optuna's default of 10 made every search of 10 trials or fewer,
    the size a CPU budget allows, a random search.)"""
    return max(1, min(10, trials // 3))


def open_study(spec: SweepConfig):
    """The search's Optuna study (created on first use), from ``--storage`` or the
    journal file in the sweep folder; a storage it cannot read is one line."""
    optuna = load_optuna()
    seed = spec.base.get("seed", 0)
    if spec.search == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(spec.trials))
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    every = base_of(spec)["forecast_every"]
    pruner = {
        "none": optuna.pruners.NopPruner(),
        "asha": optuna.pruners.SuccessiveHalvingPruner(min_resource=every, reduction_factor=2),
        "hyperband": optuna.pruners.HyperbandPruner(min_resource=every, reduction_factor=2),
    }[spec.prune]
    name = f"lvtime:{Path(spec.out).resolve()}"
    with storage_errors(spec, opening=True):
        storage = spec.storage or _journal(spec)
        for attempt in range(3):
            try:
                return optuna.create_study(
                    storage=storage, sampler=sampler, pruner=pruner, study_name=name, load_if_exists=True
                )
            except _lost_race() as exc:  # two workers creating a new database's tables at once
                if attempt == 2:
                    raise exc
                time.sleep(0.5 + attempt)


def _lost_race():
    """What creating the study raises when another worker creates the same tables at once
    (Optuna may wrap the database's error in its own)."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, StorageInternalError)


def _journal(spec: SweepConfig):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(spec.out).mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(Path(spec.out) / layout.SEARCH_JOURNAL)))


@contextlib.contextmanager
def storage_errors(spec: SweepConfig, opening: bool = False):
    """Optuna's storage failing as one line: a database server gone (at any time), or
    (``opening``) a journal that is corrupt or truncated."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    where = spec.storage or str(Path(spec.out) / layout.SEARCH_JOURNAL)
    # Optuna reading a journal it did not write fails in many ways, an assertion among them
    unreadable = (ValueError, KeyError, TypeError, UnicodeDecodeError, AssertionError) if opening else ()
    try:
        yield
    except (SQLAlchemyError, StorageInternalError) as exc:  # Optuna wraps the database's error in its own
        cause = exc.__cause__ or exc
        reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0][:160]
        again = "run the same command again once it answers"
        raise LvtimeError(f"the search's storage {where} failed ({reason}); {again}") from None
    except unreadable as exc:
        raise LvtimeError(
            f"{where}: cannot be read as the search's record ({type(exc).__name__}); move it aside"
        ) from None


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

    fresh = not Path(spec.out).exists()
    sweep.open_folder(spec)
    study = open_study(spec)
    with storage_errors(spec):
        try:
            _work(spec, study, ledger, allow_over_budget)
        except BudgetError:
            if fresh and spec.storage is None:  # refused before any trial: leave no folder behind, as a grid
                shutil.rmtree(spec.out, ignore_errors=True)
            raise
        return collect(spec, study, ledger.budget())


def _work(spec: SweepConfig, study, ledger: Ledger, allow_over_budget: bool) -> None:
    settle_abandoned(study, spec, ledger)
    space = space_of(spec)
    while counted(study) < spec.trials:
        trial = study.ask()
        trial.set_user_attr("worker", _worker())  # how a re-run tells a dead trial from another worker's
        cfg = trial_config(spec, trial.number, suggest(trial, space))
        if _ran_before(study, trial):
            continue
        why = _does_not_fit(spec, cfg, ledger, allow_over_budget)
        if why:
            study.tell(trial, state=load_optuna().trial.TrialState.FAIL)
            if not counted(study):  # not one trial fits: refused like a grid that does not fit (exit 3)
                raise BudgetError(f"{why}: no trial of the search fits; nothing was run")
            shell.say(f"search: {why}; stopping")
            break
        _run_trial(spec, study, trial, cfg, ledger, allow_over_budget)


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
            shell.say(f"search: trial {trial.number} {trial.params} ran as trial {earlier.number}")
            return True
    return False


def _does_not_fit(spec: SweepConfig, cfg: FinetuneConfig, ledger: Ledger, allow_over_budget: bool) -> str | None:
    """Why the next trial may not start (None: it may)."""
    from lvtime import finetune_run

    the_plan, _ = finetune_run.plan(cfg, ledger)
    cost = the_plan.estimate["total"]
    spent = spent_by(spec, ledger)
    if spec.max_flops is not None and spent + cost > spec.max_flops:
        return f"the next trial ({cost:.3e} FLOPs) would pass --max-flops {spec.max_flops:.3e} ({spent:.3e} spent)"
    remaining = ledger.read().totals()["remaining"]
    if cost > remaining and not allow_over_budget:
        return f"the next trial ({cost:.3e} FLOPs) does not fit the remaining {max(remaining, 0):.3e} of the budget"
    return None


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
        study.tell(trial, trained_best(summary)[1])


def trained_best(summary) -> tuple[int | None, float | None]:
    """A trial's best forecast score once it has trained, and its step. Step 0 is the
    base model, the same for every trial: counting it would rank a trial that only made
    forecasts worse at the zero-shot score, above one that trained to a worse one."""
    trained = {step: score for step, score in summary.forecast_scores.items() if step > 0}
    if not trained:
        return summary.best_step, summary.best_score
    step = min(trained, key=trained.get)
    return step, trained[step]


def collect(spec: SweepConfig, study, budget: float) -> list[dict]:
    """The trials' results, best first, in the sweep's tables and files."""
    from lvtime import sweep

    optuna = load_optuna()
    space = space_of(spec)
    planned = []
    for t in study.get_trials(deepcopy=False):
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            values = options_of(space, t.params)
            cfg = trial_config(spec, t.number, values)
            planned.append(sweep.PlannedRun(f"trial-{t.number}", values, cfg, "done", 0.0))
    rows = []
    for p in planned:
        summary = layout.read_summary(Path(p.config.out))
        if summary is None:
            continue
        rows.append(sweep.result_row(p, summary, budget) | _scores(summary, Path(p.config.out)))
    rows.sort(key=lambda r: (r["forecast_mase"] is None, r["forecast_mase"]))
    sweep.write_results(Path(spec.out), rows, option_names(space))
    return rows


def _scores(summary, run_dir: Path) -> dict:
    """A trial's best forecast score once trained, and the references' on the same series (logged at step 0)."""
    from lvtime.reference_table import LIMIT, best_naive

    refs = next((r["references"] for r in layout.read_metrics(run_dir) if "references" in r), {})
    best, best_score = best_naive(refs)
    step, score = trained_best(summary)
    return {
        "forecast_mase": score,
        "best_step": step,
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
