"""The ``lvtime`` command line: one Typer app, one small module per command group.

Exit codes (documented in docs/cli.md): 0 ok, 1 failure, 2 usage error,
3 refused by the FLOP budget, 130 interrupted (work saved where possible).
"""

from __future__ import annotations

import sys

import typer

try:  # recent typer vendors click; older ones use the click package
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import (
        ClickException,
        NoArgsIsHelpError,  # type: ignore[no-redef]
    )

from lvtime import __version__, signals
from lvtime.cli import options
from lvtime.errors import Interrupted, LvtimeError
from lvtime.shell import say

# command -> the module of lvtime.cli that defines it: only the invoked command's module
# is imported (start-up time: `lvtime flops` need not build the sweep's options)
COMMANDS = {
    "encode": "codec",
    "decode": "codec",
    "simulate": "dataset",
    "stats": "dataset",
    "flops": "budget",
    "finetune": "finetune",
    "baseline": "forecast",
    "forecast": "forecast",
    "sweep": "sweeps",
    "ledger": "budget",
    "report": "report",
}


def _error(message: str) -> None:
    say(f"error: {message}")


class _Group(options.Group):
    """Every error a user can cause becomes one ``lvtime: error: ...`` line and its exit
    code: lvtime's own errors, Click's usage errors (bad flags, out-of-range values),
    file-system errors, Ctrl-C and SIGTERM. Commands are built when first asked for."""

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, name: str):
        if name not in COMMANDS:
            return None
        import importlib

        sub = typer.Typer()
        importlib.import_module(f"lvtime.cli.{COMMANDS[name]}").register(sub)
        return typer.main.get_group(sub).commands.get(name)

    def invoke(self, ctx):
        try:
            rv = super().invoke(ctx)
            signals.check()  # a Ctrl-C / SIGTERM whose exception Python swallowed still counts
            return rv
        except Interrupted as exc:  # a requested stop, work saved: not an error
            say(str(exc))
            ctx.exit(exc.exit_code)
        except LvtimeError as exc:
            _error(str(exc))
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            _interrupted()
            ctx.exit(130)
        except BrokenPipeError:
            raise
        except OSError as exc:  # disk full, permission denied, ... while writing results
            where = f"{exc.filename}: " if exc.filename else ""
            _error(f"{where}{exc.strerror or exc}")
            ctx.exit(1)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except NoArgsIsHelpError as exc:
            print(exc.ctx.get_help())
            code = exc.exit_code
        except ClickException as exc:
            hint = f" (see: {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) else ""
            _error(exc.format_message().replace("\n", " ") + hint)
            code = exc.exit_code
        except typer.Abort:
            print("lvtime: aborted", file=sys.stderr)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


def _version(value: bool) -> None:
    if value:
        print(f"lvtime {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit.", metavar=""
    ),
) -> None:
    """Forecast predator-prey series with a LoRA-tuned small LM under a FLOP budget."""


def make_app() -> typer.Typer:
    """The ``lvtime`` app; each command is generated from the config models when invoked."""
    app = typer.Typer(
        cls=_Group,
        name="lvtime",
        help="Forecast predator-prey series with a LoRA-tuned small LM under a FLOP budget.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    return app


app = make_app()


def _interrupted() -> None:
    """Say so once, and let no later Ctrl-C / SIGTERM (a second press, or one held while
    the ledger was written) turn the exit into a traceback or a death by signal."""
    signals.ignore()
    print("lvtime: interrupted", file=sys.stderr)


def main() -> None:
    """Entry point for the console script and ``python -m lvtime``."""
    signals.install()
    try:
        app()
    except KeyboardInterrupt:
        _interrupted()
        sys.exit(130)
    except BrokenPipeError:  # `lvtime encode --all | head` is fine
        sys.stderr.close()
        sys.exit(0)
