"""``lvtime simulate``: write a predator-prey dataset in the study's layout."""

from __future__ import annotations

import typer

from lvtime.cli import options
from lvtime.cli.output import console, print_json
from lvtime.config import SimulateOptions


def register(app: typer.Typer) -> None:
    app.command("simulate", cls=options.Command)(options.command(SimulateOptions)(simulate))


def simulate(given: options.Given) -> None:
    """Simulate predator-prey series (RK4) and write them like lotka_volterra_data.h5.

    OUT is replaced (--force) only if lvtime simulated it, never any other file.
    """
    from lvtime import data, outfiles

    o = given.build(SimulateOptions)
    outfiles.check(o.out, o.force, "dataset", what="OUT")  # refuse before spending time on the simulation
    ds = data.simulate(n=o.n, points=o.points, t_max=o.t_max, seed=o.seed, dynamics=o.dynamics, ranges=o.ranges)
    data.save_dataset(o.out, ds, force=o.force)
    summary = {
        "path": o.out,
        "n_series": ds.n_series,
        "points": ds.n_points,
        "t_max": o.t_max,
        "seed": o.seed,
        "dynamics": o.dynamics,
        "ranges": o.ranges,
        "min": float(ds.trajectories.min()),
        "max": float(ds.trajectories.max()),
    }
    if o.as_json:
        print_json(summary)
    else:
        console.print(
            f"wrote {ds.n_series} series x {ds.n_points} steps ({o.dynamics}, seed {o.seed}) "
            f"to {o.out}; values {summary['min']:.3g}..{summary['max']:.3g}"
        )
