"""Printing shared by the commands: rich for people, JSON for scripts.

In a pipe, tables print at full width (values are never cut to "..."); on a terminal
they take its width, wrapping cells rather than truncating them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from lvtime.flops import flops_str  # noqa: F401 - re-exported for the commands

# A pipe has no width: rich would assume 80 columns and cut every cell.
_PIPE_WIDTH = None if sys.stdout.isatty() else 10_000
console = Console(highlight=False, width=_PIPE_WIDTH, soft_wrap=not sys.stdout.isatty())
err_console = Console(stderr=True, highlight=False)


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars (numpy is not imported here: start-up time)
        return obj.tolist()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(obj, default=_default, indent=indent)


def print_json(obj: Any, indent: int | None = 2) -> None:
    sys.stdout.write(to_json(obj, indent) + "\n")


def pct(part: float, whole: float) -> str:
    """A share in percent, readable at any size: ``24.2%``, ``0.0104%``, ``<0.0001%``."""
    if not whole:
        return "-"
    share = 100.0 * part / whole
    return "<0.0001%" if 0 < abs(share) < 1e-4 else f"{share:.3g}%"
