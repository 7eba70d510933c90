"""``lvtime simulate``: write a predator-prey dataset in the study's layout."""

from __future__ import annotations

from pathlib import Path

import typer

from lvtime.cli.output import console, print_json


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)


def simulate(
    out: Path = typer.Argument(..., help="HDF5 file to write."),
    n: int = typer.Option(1000, "--n", min=1, help="Number of series."),
    points: int = typer.Option(100, min=2, help="Timesteps per series."),
    t_max: float = typer.Option(200.0, help="Time span: steps are linspace(0, t_max, points)."),
    seed: int = typer.Option(0, help="Random seed (parameters and initial conditions)."),
    dynamics: str = typer.Option(
        "rosenzweig-macarthur", help="rosenzweig-macarthur (the study's), lotka-volterra or mixed (docs/data.md)."
    ),
    ranges: str = typer.Option(
        "study", help="Parameter ranges: study (period ~20 steps, like the study's data) or fast (period ~8)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace OUT if lvtime simulated it (never any other file)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Simulate predator-prey series (RK4) and write them like lotka_volterra_data.h5."""
    from lvtime import data, outfiles

    outfiles.check(out, force, "dataset", what="OUT")  # refuse before spending time on the simulation
    ds = data.simulate(n=n, points=points, t_max=t_max, seed=seed, dynamics=dynamics, ranges=ranges)
    data.save_dataset(out, ds, force=force)
    summary = {
        "path": str(out),
        "n_series": ds.n_series,
        "points": ds.n_points,
        "t_max": t_max,
        "seed": seed,
        "dynamics": dynamics,
        "ranges": ranges,
        "min": float(ds.trajectories.min()),
        "max": float(ds.trajectories.max()),
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"wrote {ds.n_series} series x {ds.n_points} steps ({dynamics}, seed {seed}) "
            f"to {out}; values {summary['min']:.3g}..{summary['max']:.3g}"
        )
