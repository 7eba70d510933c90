"""The ``lvtime`` command line: one Typer app, one small module per command group.

Exit codes (documented in docs/cli.md): 0 ok, 1 failure, 2 usage error,
3 refused by the FLOP budget, 130 interrupted (work saved where possible).
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from lvtime import __version__
from lvtime.cli import budget, codec, dataset, forecast, sweeps, train
from lvtime.errors import LvtimeError


class _Group(TyperGroup):
    """Turns a user error raised anywhere below into one line and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LvtimeError as exc:
            print(f"lvtime: error: {exc}", file=sys.stderr)
            ctx.exit(exc.exit_code)


app = typer.Typer(
    cls=_Group,
    name="lvtime",
    help="Forecast predator-prey series with a LoRA-tuned small LM under a FLOP budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"lvtime {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Forecast predator-prey series with a LoRA-tuned small LM under a FLOP budget."""


codec.register(app)
dataset.register(app)
budget.register(app)
train.register(app)
forecast.register(app)
sweeps.register(app)


def main() -> None:
    """Entry point for the console script and ``python -m lvtime``."""
    try:
        app()
    except KeyboardInterrupt:
        print("lvtime: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `lvtime encode --all | head` is fine
        sys.stderr.close()
        sys.exit(0)
