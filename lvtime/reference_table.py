"""The reference forecasters, declared once: every other module reads this table.

A model's forecast means little alone; lvtime scores it beside forecasters that are not
language models. Each entry names the function that forecasts (``module:function``,
imported only when used, so this module and :mod:`lvtime.config` stay free of numpy), the
label people read, the line it is drawn with, and its role:

* ``naive``: a forecaster a model should beat ("best naive reference" is the best of these);
* ``limit``: a forecaster that knows the equations behind the data, so it marks what can
  be reached at all, not a competitor (the "ODE limit").

A function takes ``(history (N, H, 2), horizon, dt)`` and returns the forecast
``(N, horizon, 2)``, or ``(forecast, details)`` when it has something to report (a dict
that ``metrics.json`` keeps under ``references``). An entry that needs an optional
package names it and the extra that installs it. Adding a forecaster is one entry here
plus its function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Reference:
    name: str  # what --references takes and every file records
    label: str  # what tables, plots and the report show
    function: str  # "module:function", imported when the reference runs
    role: Literal["naive", "limit"]
    line: str | tuple  # matplotlib line style
    dash: str  # SVG stroke-dasharray of the report's charts
    needs: str | None = None  # an optional package the function imports
    extra: str | None = None  # the lvtime extra that installs it


TABLE = (
    Reference("last_value", "last value", "lvtime.references:last_value", "naive", ":", "1 3"),
    Reference("linear", "linear trend", "lvtime.references:linear", "naive", (0, (3, 1, 1, 1)), "4 2 1 2"),
    Reference("seasonal", "seasonal naive", "lvtime.references:seasonal", "naive", "--", "6 4"),
    Reference("arima", "AutoARIMA", "lvtime.references:arima", "naive", (0, (5, 1)), "8 2",
              needs="statsforecast", extra="arima"),
    Reference("ode", "ODE limit", "lvtime.references:ode_reference", "limit", "-.", "1 4"),
)  # fmt: skip

NAMES = tuple(r.name for r in TABLE)
BY_NAME = {r.name: r for r in TABLE}
LIMIT = next(r.name for r in TABLE if r.role == "limit")


def installed(ref: Reference) -> bool:
    """Whether the reference's optional package is there (looked up, not imported)."""
    from importlib.util import find_spec

    if ref.needs is None:
        return True
    try:
        return find_spec(ref.needs) is not None
    except (ImportError, ValueError):  # a broken install, or a module blanked in sys.modules
        return False


def available() -> list[str]:
    """The references this installation can run: the default, and what ``all`` means."""
    return [r.name for r in TABLE if installed(r)]


def require(name: str) -> Reference:
    """The entry of ``name``, refused in one line when unknown or not installed."""
    from lvtime.errors import UsageError

    if name not in BY_NAME:
        raise UsageError(f"unknown reference {name!r} (choose from {', '.join(NAMES)})")
    ref = BY_NAME[name]
    if not installed(ref):
        raise UsageError(
            f"reference {name!r} needs {ref.needs}: pip install 'lvtime[{ref.extra}]' (or pip install {ref.needs})"
        )
    return ref


def label(name: str) -> str:
    """What people read for ``name`` (the name itself for what is not a reference: "model")."""
    return BY_NAME[name].label if name in BY_NAME else name


def is_naive(name: str) -> bool:
    return name in BY_NAME and BY_NAME[name].role == "naive"


def best_naive(scores: dict[str, float | None]) -> tuple[str | None, float | None]:
    """The best naive reference of ``name -> score`` (lower is better) and its score;
    the limit and the model are not candidates."""
    naive = {name: s for name, s in scores.items() if is_naive(name) and s is not None}
    best = min(naive, key=naive.get) if naive else None
    return best, naive.get(best)
