"""Printing helpers shared by the commands: rich for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from rich.console import Console

from lvtime.flops import flops_str  # noqa: F401 - re-exported for the commands

LEDGER_HELP = "Ledger file (default: $LVTIME_LEDGER or ./lvtime-ledger.json)."

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
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


def parse_floats(text: str, what: str) -> list[float]:
    from lvtime.errors import UsageError

    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated numbers, got {text!r}") from None


def parse_ints(text: str, what: str) -> list[int]:
    from lvtime.errors import UsageError

    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated integers, got {text!r}") from None


def build(model_cls, **fields):
    """Construct a pydantic config, turning validation errors into one-line usage errors."""
    from pydantic import ValidationError

    from lvtime.errors import UsageError, first_error

    try:
        return model_cls(**fields)
    except ValidationError as exc:
        where, _, message = first_error(exc).partition(": ")
        raise UsageError(f"{where.replace('_', '-')}: {message}") from None  # in flag spelling


def field_option(model, name: str, *flags: str, **overrides):
    """A ``typer.Option`` whose default, help, bounds and choices come from the pydantic
    field ``name`` of ``model``, the one source of every option; ``overrides`` (e.g. a
    default the command resolves later) win."""
    import typing

    import typer

    field = model.model_fields[name]
    kw: dict = {"help": field.description or ""}
    for bound in field.metadata:  # closed bounds; pydantic checks open ones (gt, lt) in one line
        for attr, key in (("ge", "min"), ("le", "max")):
            if getattr(bound, attr, None) is not None:
                kw[key] = getattr(bound, attr)
    if typing.get_origin(field.annotation) is typing.Literal:
        kw["help"] += " One of: " + ", ".join(map(str, typing.get_args(field.annotation))) + "."
    kw.update(overrides)
    default = kw.pop("default", field.get_default(call_default_factory=True))
    return typer.Option(default, *flags, **kw)
