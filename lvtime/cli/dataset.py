"""``lvtime simulate``: write a predator-prey dataset in the study's layout;
``lvtime stats``: how a dataset compares with the study's."""

from __future__ import annotations

import typer

from lvtime.cli import options
from lvtime.cli.output import console, print_json, progress_bar
from lvtime.config import SimulateOptions, StatsOptions
from lvtime.errors import UsageError

GRID_OPTIONS = ("points", "t_max", "dynamics", "ranges")  # what --like takes from its file


def register(app: typer.Typer) -> None:
    app.command("simulate", cls=options.Command)(options.command(SimulateOptions)(simulate))
    app.command("stats", cls=options.Command)(options.command(StatsOptions)(stats))


def simulate(given: options.Given) -> None:
    """Simulate predator-prey series (RK4) and write them like lotka_volterra_data.h5.

    The defaults draw parameters the way the study did (`lvtime stats` compares).
    With --like FILE, the series are drawn like FILE's instead. OUT is replaced
    (--force) only if lvtime simulated it, never any other file.

    Examples:\n
      lvtime simulate lotka_volterra_data.h5\n
      lvtime simulate more.h5 --like my_series.h5 --n 5000 --seed 1\n
      lvtime simulate extra.h5 --like lotka_volterra_data.h5 --like-split train --n 3500
    """
    from lvtime import data, outfiles, simulation

    o = given.build(SimulateOptions)
    if o.like is not None and (clash := [name for name in GRID_OPTIONS if name in given]):
        raise UsageError(f"--like takes the time grid and dynamics from {o.like}; drop --{clash[0].replace('_', '-')}")
    if o.like_split is not None and o.like is None:
        raise UsageError("--like-split needs --like FILE")
    outfiles.check(o.out, o.force, "dataset", what="OUT")  # refuse before spending time on the simulation
    summary = {"path": o.out, "seed": o.seed}
    if o.like is None:
        ds = simulation.simulate(o.n, o.points, o.t_max, o.seed, o.dynamics, o.ranges)
        summary |= {"dynamics": o.dynamics, "ranges": o.ranges, "t_max": o.t_max}
    else:
        source = data.load_dataset(o.like)
        if o.like_split is not None:
            picked = data.select_series(source.n_series, split=o.like_split)
            source = data.Dataset(source.trajectories[picked], source.time, source.path)
        with progress_bar(f"fitting {source.n_series} series", source.n_series, quiet=o.as_json) as advance:
            fitted = simulation.fit(source, progress=advance)
        ds = simulation.like(fitted, o.n, o.seed)
        summary |= {"like": o.like, "like_split": o.like_split, "fitted": len(fitted.theta)}
        summary |= {"not_fitted": fitted.failed, "noise": fitted.noise}
    data.save_dataset(o.out, ds, force=o.force)
    summary |= {"n_series": ds.n_series, "points": ds.n_points}
    summary |= {"min": float(ds.trajectories.min()), "max": float(ds.trajectories.max())}
    if o.as_json:
        print_json(summary)
        return
    how = f"like {o.like}, {len(fitted.theta)} of {source.n_series} series fitted" if o.like else o.dynamics
    console.print(
        f"wrote {ds.n_series} series x {ds.n_points} steps ({how}, seed {o.seed}) "
        f"to {o.out}; values {summary['min']:.3g}..{summary['max']:.3g}"
    )


def stats(given: options.Given) -> None:
    """How datasets look to a forecaster, next to the study's data: periods, spread,
    decay, predator size, and how hard seasonal naive finds them (docs/data.md).

    Examples:\n
      lvtime stats lotka_volterra_data.h5\n
      lvtime stats mine.h5 simulated.h5 --json
    """
    from rich.table import Table

    from lvtime import data, data_stats

    o = given.build(StatsOptions)
    if not o.files:
        raise UsageError("give one or more datasets, e.g. lvtime stats lotka_volterra_data.h5")
    found = {path: data_stats.describe(data.load_dataset(path).trajectories) for path in o.files}
    if o.as_json:
        print_json({"study": data_stats.STUDY, "files": found})
        return
    table = Table("statistic", "study's data", *o.files)
    for stat in data_stats.STATISTICS:
        study = data_stats.STUDY[stat.name]
        cells = [_cell(v[stat.name], study) for v in found.values()]
        table.add_row(stat.label, f"{study:.3g}", *cells)
    console.print(table)


def _cell(value: float, study: float) -> str:
    return f"{value:.3g} ({value / study - 1:+.0%})" if value == value else "- (no series has it)"
