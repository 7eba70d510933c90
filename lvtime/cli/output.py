"""Printing shared by the commands: rich for people, JSON for scripts.

In a pipe, tables print at full width (values are never cut to "..."); on a terminal
they take its width, wrapping cells rather than truncating them.

Nothing printed is read as rich markup: a label, a path, a run name or a model's text
that holds ``[red]`` or ``[/b]`` shows as typed. Styles are given with :func:`styled`
(or ``style=``), never written into a string.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from lvtime.flops import flops_str, pct  # noqa: F401 - re-exported for the commands
from lvtime.shell import escape_control


class _LazyConsole:
    """A rich ``Console`` made on first use: importing rich.console is a fifth of a fast
    command's start-up, and a ``--json`` run never prints through it."""

    def __init__(self, **options: Any):
        self._options = options
        self._console = None

    def real(self):
        if self._console is None:
            self._console = _inert_console_class()(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:  # only for names this class does not define
        return getattr(self.real(), name)


def _inert_console_class():
    """rich's ``Console``, showing every control character of a printed string as ``\\xNN``
    (newlines too: a line is one string's): a name holding an escape sequence, a carriage
    return or a newline is shown, and never clears the screen or forges a line."""
    from rich.console import Console

    class InertConsole(Console):
        def render_str(self, text: str, **options: Any):
            return super().render_str(escape_control(text), **options)

    return InertConsole


# A pipe has no width: rich would assume 80 columns and cut every cell.
_PIPE_WIDTH = None if sys.stdout.isatty() else 10_000
console = _LazyConsole(highlight=False, markup=False, width=_PIPE_WIDTH, soft_wrap=not sys.stdout.isatty())
err_console = _LazyConsole(stderr=True, highlight=False, markup=False)


def styled(*parts: str | tuple[str, str]):
    """A rich ``Text`` of plain parts and ``(text, style)`` pairs: the one way to give
    printed text a style, with every part shown literally."""
    from rich.text import Text

    return Text.assemble(*(escape_control(p) if isinstance(p, str) else (escape_control(p[0]), p[1]) for p in parts))


def print_table(table, optional: tuple[str, ...] = (), whole: tuple[str, ...] = ()) -> None:
    """Print ``table`` at the console's width without cutting a value to "...": the
    ``optional`` columns are dropped, in that order, while the table is too wide; the
    ``whole`` ones (ids a user types back) never break; the rest wrap."""
    from rich.measure import Measurement

    for column in table.columns:
        column.overflow = "fold"
        if column.header in whole:
            column.min_width = max((len(str(c)) for c in column._cells), default=0)
    out = console.real()
    unbounded = out.options.update_width(10**6)  # the width the table wants, not what it gets
    for name in optional:
        if Measurement.get(out, unbounded, table).maximum <= out.width:
            break
        headers = [c.header for c in table.columns]
        if name in headers:
            table.columns.pop(headers.index(name))
    out.print(table)


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars (numpy is not imported here: start-up time)
        return obj.tolist()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None: they are not JSON, and scripts parse this."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") or hasattr(obj, "model_dump"):
        return _finite(_default(obj))
    return obj


def to_json(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON (never NaN or Infinity) of ``obj``."""
    return json.dumps(_finite(obj), default=_default, indent=indent, allow_nan=False)


def print_json(obj: Any, indent: int | None = 2) -> None:
    sys.stdout.write(to_json(obj, indent) + "\n")


class progress_bar:  # noqa: N801 - used as a context manager, like open()
    """``with progress_bar("fitting", total) as advance: advance(k)``: a bar on stderr
    (nothing with ``quiet``, e.g. under --json), removed when the work is done."""

    def __init__(self, label: str, total: int, quiet: bool = False):
        self.label, self.total, self.quiet, self.bar = label, total, quiet, None

    def __enter__(self):
        if self.quiet:
            return lambda k: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn(self.label, markup=False), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=err_console.real(), transient=True,
        )  # fmt: skip
        task = self.bar.add_task(self.label, total=self.total)
        self.bar.start()
        return lambda k: self.bar.update(task, advance=k)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
