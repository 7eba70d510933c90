"""The study's experiment table from a ledger: training rows, a subtotal before the final
run, evaluation rows, the total and what remains. No torch."""

from __future__ import annotations

from typing import Any

from lvtime.ledger_entries import Entry, LedgerData

EVAL_KINDS = ("baseline", "forecast")


def _row(experiment: str, flops: float, budget: float, cumulative: Any, e: Entry | None = None) -> dict[str, Any]:
    """One table row; a subtotal's (no entry) has empty kind, status and steps."""
    return {
        "experiment": experiment,
        "kind": e.kind if e else "",
        "status": ("stale" if e.is_stale() else e.status) if e else "",
        "steps": e.config.get("steps", "") if e else "",
        "flops": flops,
        "percent": 100 * flops / budget,
        "cumulative": cumulative,
    }


def report_rows(data: LedgerData) -> list[dict[str, Any]]:
    """The study's experiment table: training rows, a subtotal before the final run,
    evaluation rows, the total and what remains. Each row has ``experiment``,
    ``kind``, ``status``, ``steps``, ``flops``, ``percent`` and ``cumulative``."""
    rows: list[dict[str, Any]] = []
    cumulative = 0.0

    def add(e: Entry) -> None:
        nonlocal cumulative
        cumulative += e.counted
        rows.append(_row(e.label, e.counted, data.budget, cumulative, e))

    def subtotal(name: str) -> None:
        rows.append(_row(name, cumulative, data.budget, cumulative))

    training = [e for e in data.entries if e.kind not in EVAL_KINDS]
    final = next((e for e in training if "final" in e.label.lower()), None)
    for e in training:
        if e is final:
            subtotal("Subtotal before the final run")
        add(e)
    if training:
        subtotal("Training total")
    for e in data.entries:
        if e.kind in EVAL_KINDS:
            add(e)
    subtotal("Total")
    rows.append(_row("Remaining budget", data.budget - cumulative, data.budget, ""))
    return rows
