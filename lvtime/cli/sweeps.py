"""``lvtime sweep``: budget-planned hyperparameter grids that resume."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from lvtime.cli import options
from lvtime.cli.output import console, err_console, flops_str, pct, print_json, print_table, styled
from lvtime.config import FinetuneConfig, SweepConfig, SweepFlags, option_names
from lvtime.shell import command_line


def register(app: typer.Typer) -> None:
    command = options.command(SweepConfig, SweepFlags, skip=("base", "grid", "space"), lists_of=FinetuneConfig)
    app.command("sweep", cls=options.Command)(command(sweep))


def sweep(given: options.Given) -> None:
    """Fine-tune every configuration of a grid, within the budget, and rank the results.

    Every finetune option takes a list here: one value fixes it, several sweep it
    (--rank 2,4,8 --lr 1e-5,1e-4); --config sweep.json can fix or sweep any of them too.
    Re-running the same command skips finished runs and resumes an interrupted one. Exit
    3 when the grid does not fit (see --fit-budget). --jobs N runs N configurations at
    once (one GPU, or an equal share of the CPU cores, each); --print-commands prints them
    for a job array instead, and a later lvtime sweep collects the results.

    Example:\n
      lvtime sweep --model smollm2-135m-instruct --rank 2,4,8 --lr 1e-5,1e-4 --steps 200 --out runs/sweep-rl
    """
    from lvtime import sweep as sw
    from lvtime.ledger import Ledger

    flags = given.build(SweepFlags)
    lg = Ledger(flags.ledger)
    spec = _spec(given, flags)
    if spec.search != "grid":
        _search(spec, lg, flags)
        return
    planned, summary = sw.plan(spec, lg, flags.fit_budget)
    if flags.print_commands:
        _print_commands(spec, planned, lg, flags.allow_over_budget, flags.as_json)
        return
    if flags.as_json and flags.dry_run:
        print_json(_plan_doc(planned, summary))
        return
    if not flags.as_json:
        _print_plan(planned, summary)
    if flags.dry_run:
        return
    sw.check_budget(planned, summary, flags.allow_over_budget)
    rows = _run_grid(spec, planned, lg, flags)
    best = sw.finetune_command(_best_config(planned, rows)) if rows else None
    if flags.as_json:
        print_json({"plan": _plan_doc(planned, summary), "results": rows, "best_command": best})
        return
    _print_results(rows, list(spec.grid), spec.out, spec.rank_by)
    if best:
        console.print("best configuration, as a finetune command:")
        console.print(best, soft_wrap=True)


def _run_grid(spec, planned, lg, flags: SweepFlags) -> list[dict]:
    from lvtime import sweep as sw

    def on_run_start(p) -> None:
        err_console.print(styled((p.name, "bold"), f" ({'resuming' if p.state == 'resume' else 'new'})"))

    show = not flags.quiet and not flags.as_json
    gpus = _devices(flags.devices, spec, flags.jobs)
    on_start = on_run_start if show else None
    return sw.run(spec, planned, lg, flags.allow_over_budget, on_start, jobs=flags.jobs, devices=gpus)


def _spec(given: options.Given, flags: SweepFlags):
    """The sweep: --config's, then the finetune options given (one value fixes an option,
    several sweep it) and --set, then the sweep's own options."""
    from lvtime import sweep as sw
    from lvtime.errors import UsageError

    spec = sw.load_sweep_config(flags.config) if flags.config else SweepConfig()
    base, grid = dict(spec.base), dict(spec.grid)
    for name, source in given.sources.items():
        if source.model is not FinetuneConfig or name not in given:
            continue
        value = given.get(name)
        several = source.listed and not options.is_list(source.info.annotation)  # a list option's list is one value
        if several and len(value) > 1:
            grid[name] = value
            base.pop(name, None)
        else:
            base[name] = value[0] if several else value
            grid.pop(name, None)
    base.update(_parse_sets(flags.fix))
    if not grid and not base and not spec.space:
        raise UsageError("nothing to sweep: give options several values (e.g. --rank 2,4,8) or --config")
    return options.build(SweepConfig, **{**spec.model_dump(), **given.of(SweepConfig), "base": base, "grid": grid})


def _search(spec, lg, flags) -> None:
    """A random or tpe search: its plan, its worker command, or the search itself."""
    from lvtime import layout, search
    from lvtime import sweep as sw

    search.load_optuna()  # one line naming the extra, before anything else
    search.check_storage(spec)  # a URL Optuna can use, its server reached: before any folder or entry
    search.check_same_search(spec)
    plan = _search_plan(spec, lg, flags.allow_over_budget)
    if flags.print_commands:
        _print_worker(spec, lg, flags)
    elif flags.dry_run and flags.as_json:
        print_json(plan)
    elif flags.dry_run:
        console.print(_describe(plan, lg.budget()))
    else:
        rows = _work_search(spec, lg, flags)
        best_command = sw.finetune_command(layout.read_config(Path(rows[0]["out"]))) if rows else None
        if flags.as_json:
            print_json({"plan": plan, "results": rows, "best_command": best_command})
            return
        _print_results(rows, option_names(search.space_of(spec)), spec.out, "forecast")
        if best_command:
            console.print("best configuration, as a finetune command:")
            console.print(best_command, soft_wrap=True)


def _search_plan(spec, lg, allow_over_budget: bool) -> dict:
    """What the search may spend: trials x the first trial's estimate, within the cap and the budget."""
    per_trial = _trial_cost(spec, lg)
    room = lg.read().totals()["remaining"]
    limits = [spec.trials * per_trial, spec.max_flops, None if allow_over_budget else room]
    return {
        "search": spec.search,
        "trials": spec.trials,
        "prune": spec.prune,
        "first_trial_cost": per_trial,
        "most_flops": min(x for x in limits if x is not None),
        "remaining": room,
        "out": spec.out,
    }


def _describe(plan: dict, budget: float) -> str:
    return (
        f"{plan['search']} search of {plan['trials']} trials in {plan['out']} (prune: {plan['prune']}): a trial "
        f"costs about {flops_str(plan['first_trial_cost'])} FLOPs; the search spends at most "
        f"{flops_str(plan['most_flops'])} ({pct(plan['most_flops'], budget)} of budget)"
    )


def _print_worker(spec, lg, flags) -> None:
    """One worker's command line: run it on as many machines as share the storage and ledger."""
    from lvtime import layout, search
    from lvtime import sweep as sw

    sw.open_folder(spec)
    command = ["lvtime", *search.worker_command(Path(spec.out) / layout.SWEEP, lg, flags.allow_over_budget)]
    if flags.as_json:
        print_json([command])
    else:
        print(command_line(command))


def _trial_cost(spec, lg) -> float:
    """The estimate of the search's first configuration (each choice's first value)."""
    from lvtime import finetune_run, search

    the_plan, _ = finetune_run.plan(search.trial_config(spec, 0, search.first_options(spec)), lg)
    return the_plan.estimate["total"]


def _work_search(spec, lg, flags) -> list[dict]:
    from lvtime import jobs, layout, search
    from lvtime import sweep as sw

    if flags.jobs == 1:
        return search.run(spec, lg, flags.allow_over_budget)
    sw.open_folder(spec)  # the workers read the search from its sweep.json
    command = search.worker_command(Path(spec.out) / layout.SWEEP, lg, flags.allow_over_budget)
    work = [
        jobs.Job(f"worker-{i}", [command], layout.log_path(Path(spec.out), f"worker-{i}")) for i in range(flags.jobs)
    ]
    jobs.run(work, flags.jobs, _devices(flags.devices, spec, flags.jobs))
    return search.collect(spec, search.open_study(spec), lg.budget())


def _devices(devices: list[str], spec, jobs: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES entries for the jobs: --devices, else every visible GPU."""
    import re

    from lvtime import jobs as jb
    from lvtime.errors import UsageError

    if jobs == 1:
        return []
    if devices:
        return devices
    device = str(spec.base.get("device", "auto"))
    if re.fullmatch(r"cuda:\d+", device) or "device" in spec.grid:
        raise UsageError("with --jobs, --devices chooses each job's GPU; set the device to auto or cuda")
    return [] if device == "cpu" else jb.visible_gpus()


def _print_commands(spec, planned, lg, allow_over_budget: bool, as_json: bool) -> None:
    """One shell line per configuration still to run (finetune, then && its forecast)."""
    from lvtime import sweep as sw

    todo = [p for p in planned if p.state not in ("done", "busy") and p.planned]
    chains = {p.name: sw.job_commands(spec, p, lg, allow_over_budget) for p in todo}
    sw.open_folder(spec)  # the commands write into it; a later `lvtime sweep` collects it
    if not todo:
        busy = sum(p.state == "busy" for p in planned)
        print(
            f"lvtime: nothing left to run in {spec.out}" + (f" ({busy} held by running processes)" if busy else ""),
            file=sys.stderr,
        )
    if as_json:
        print_json([{"run": name, "commands": [["lvtime", *c] for c in cs]} for name, cs in chains.items()])
        return
    for commands in chains.values():
        print(" && ".join(command_line(["lvtime", *c]) for c in commands))


def _parse_sets(items: list[str]) -> dict:
    """``["context=256", "head=numeric"]`` -> ``{"context": 256, "head": "numeric"}``."""
    import json

    from lvtime.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in FinetuneConfig.model_fields:
            raise UsageError(f"--set {item!r}: expected OPTION=VALUE with a finetune option (e.g. context=256)")
        if options.is_list(FinetuneConfig.model_fields[key].annotation):
            out[key] = [v.strip() for v in value.split(",") if v.strip()]  # targets=q_proj,v_proj
            continue
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a bare string such as numeric or bfloat16
    return out


def _best_config(planned, rows):
    return next(p.config for p in planned if p.name == rows[0]["run"])


def _plan_doc(planned, summary) -> dict:
    return {
        "runs": [
            {"run": p.name, **p.values, "state": p.state, "cost": p.cost, "planned": p.planned, "out": p.config.out}
            for p in planned
        ],
        **summary,
    }


def _print_plan(planned, summary) -> None:
    from rich.table import Table

    budget = summary["budget"]
    table = Table("run", "state", "FLOPs", "% budget", "cumulative", title="sweep plan")
    cum = 0.0
    for p in planned:
        if p.planned:
            cum += p.cost
        state = p.state if p.planned else styled(("skipped (does not fit)", "yellow"))
        table.add_row(p.name, state, flops_str(p.cost), pct(p.cost, budget), flops_str(cum))
    print_table(table, optional=("cumulative", "% budget"))
    line = (
        f"sweep total {flops_str(summary['sweep_total'])} ({pct(summary['sweep_total'], budget)}); "
        f"remaining now {flops_str(summary['remaining'])}, after {flops_str(summary['remaining_after'])}"
    )
    console.print(line, style="red" if summary["remaining_after"] < 0 else None)


def _print_results(rows, keys, out, rank_by: str) -> None:
    from rich.table import Table

    forecast = rank_by == "forecast"
    extra = ["forecast MASE", "best ref", "ODE limit"] if forecast else []
    table = Table(
        "run",
        *keys,
        "val loss @0",
        "val loss",
        *extra,
        "steps",
        "FLOPs",
        "% budget",
        "wall",
        title=f"results (best first, by {'forecast MASE' if forecast else 'validation loss'}); files in {out}",
    )

    def shown(x, spec: str = ".3g") -> str:
        """'-' for no value: a search's pruned trial has no last validation loss."""
        return "-" if x is None else format(x, spec)

    for r in rows:
        scores = [shown(r.get("forecast_mase")), shown(r.get("best_reference_mase")), shown(r.get("ode_limit_mase"))]
        table.add_row(
            f"{r['run']} (pruned)" if r.get("pruned") else r["run"],  # the run column is never dropped
            *(shown(r[k], ".4g" if isinstance(r[k], float) else "") for k in keys),  # lr 0.0024, not 0.00241561...
            shown(r["val_loss_0"], ".4f"),
            shown(r["val_loss"], ".4f"),
            *(scores if forecast else []),
            str(r["steps"]),
            flops_str(r["flops"]),
            f"{r['percent_budget']:.3g}%",
            f"{r['wall_s']:.0f}s",
        )
    print_table(table, optional=("val loss @0", "wall", "% budget", "ODE limit", "best ref", "steps"), whole=("run",))
