"""The FLOP budget ledger: one JSON file shared by every run in a working directory.

Protocol for a spending command::

    with ledger.reservation("finetune r4", 6.8e15, kind="finetune") as r:
        ...                     # the work; keep r.spent up to date as FLOPs are spent
    # settled on every exit path: completed, interrupted (Ctrl-C, SIGTERM) or failed

A reservation counts against the budget at its estimate until it is settled, so a
process that dies never makes the ledger under-count; ``lvtime ledger`` marks such
entries stale and ``lvtime ledger settle ID`` closes them. Every read-modify-write
holds an exclusive ``flock`` on a sidecar lock file, and every write goes to a temp
file that is fsynced and atomically renamed, so concurrent shell-scripted runs
neither lose entries nor leave a torn file. A ledger reached through a symlink is
locked and replaced at its real path, so folders linking to one file share one
budget. A file that is corrupt, truncated, not a ledger, or holds a number that is
not finite and >= 0 is reported and never overwritten. No torch.

Three modules hold the parts: :mod:`lvtime.ledger_entries` (entries and their counting
rule), :mod:`lvtime.ledger_file` (the file, its lock, atomic writes) and
:mod:`lvtime.ledger_report` (the study's table); this one holds the budget's operations.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

from lvtime import signals
from lvtime.errors import BudgetError, Interrupted, LedgerError, UsageError
from lvtime.flops import BUDGET
from lvtime.ledger_entries import MAX_FLOPS, SCHEMA, Entry, LedgerData, Status, check_flops, new_entry_id, now
from lvtime.ledger_file import DEFAULT_PATH, LedgerFile, default_path
from lvtime.ledger_report import EVAL_KINDS, report_rows
from lvtime.shell import command_line

__all__ = [
    "DEFAULT_PATH", "EVAL_KINDS", "MAX_FLOPS", "SCHEMA", "Entry", "Ledger", "LedgerData", "Reservation", "Status",
    "check_flops", "default_path", "report_rows",
]  # fmt: skip


class Reservation:
    """A running entry; the work sets ``spent`` as it goes (what settles the entry if it
    stops early: the ledger never under-counts what was really done)."""

    def __init__(self, entry: Entry):
        self.entry = entry
        self.spent = 0.0

    @property
    def id(self) -> str:
        return self.entry.id


class Ledger(LedgerFile):
    """The budget's operations on a :class:`LedgerFile`: reserve, finish, settle, add."""

    def init(self, budget: float = BUDGET, force: bool = False) -> LedgerData:
        """Create the ledger with ``budget``; an existing one only has its budget changed
        with ``force`` (its entries are always kept)."""
        if not (check_flops(budget, "--budget") > 0):
            raise UsageError("--budget must be a finite number > 0")
        with self._locked() as data:
            if data.entries and not force and data.budget != budget:
                raise UsageError(
                    f"{self.path}: already has {len(data.entries)} entries with budget "
                    f"{data.budget:.3g}; use --force to change the budget (entries are kept)"
                )
            data.budget = budget
        return self.read()

    def reserve(
        self,
        label: str,
        estimate: float,
        *,
        kind: str = "other",
        config: dict[str, Any] | None = None,
        command: str | None = None,
        outputs: list[str] | None = None,
        allow_over_budget: bool = False,
    ) -> Entry:
        """Record a run about to start, counting ``estimate`` against the budget.

        Raises :class:`BudgetError` when spent + reserved + estimate exceeds the budget,
        unless ``allow_over_budget``.
        """
        estimate = check_flops(estimate, "a FLOP estimate")
        with self._locked() as data:
            t = data.totals()
            over = estimate > t["remaining"]
            if over and not allow_over_budget:
                raise BudgetError(
                    f"{label}: needs {estimate:.3e} FLOPs but only {max(t['remaining'], 0):.3e} "
                    f"of {data.budget:.3e} remain ({t['spent']:.3e} spent, "
                    f"{t['reserved']:.3e} reserved); use --allow-over-budget to run anyway"
                )
            entry = Entry(
                id=new_entry_id(),
                label=label,
                kind=kind,
                command=command if command is not None else command_line(sys.argv),
                config=config or {},
                estimated_flops=estimate,
                outputs=outputs or [],
                pid=os.getpid(),
                host=socket.gethostname(),
                over_budget=over,
            )
            data.entries.append(entry)
        return entry

    def finish(
        self, entry_id: str, spent: float, status: Status = "completed", outputs: list[str] | None = None
    ) -> Entry:
        """Close a reservation with the FLOPs really spent."""
        if status == "running":
            raise UsageError("finish() needs a final status")
        spent = check_flops(spent, "spent FLOPs")
        with self._locked() as data:
            e = self._find(data, entry_id)
            e.status = status
            e.spent_flops = spent
            e.ended_at = now()
            if outputs:
                e.outputs = sorted(set(e.outputs) | set(outputs))
            return e

    @contextlib.contextmanager
    def reservation(self, label: str, estimate: float, **kw: Any) -> Iterator[Reservation]:
        """Reserve, run the block, settle: ``completed`` with ``r.spent`` when the block
        ends, ``interrupted`` on Ctrl-C / SIGTERM / :class:`Interrupted`, ``failed`` on
        any other exception (both with ``r.spent``, what the work had spent). Signals
        are held while the entry is written and settled, so none can leak it."""
        with signals.held() as hold:
            r = Reservation(self.reserve(label, estimate, **kw))
            status = "failed"
            try:
                hold.release()  # a signal that came during the write lands here, inside the try
                yield r
                status = "completed"
            except (KeyboardInterrupt, Interrupted):
                status = "interrupted"
                raise
            finally:
                hold.hold()
                self.finish(r.id, r.spent, status)

    def settle(self, entry_id: str, spent: float | None = None, force: bool = False) -> Entry:
        """Close a running entry whose process is gone (``lvtime ledger settle``).

        ``spent`` defaults to the reservation (never under-count). A process still
        alive on this host is refused; an entry from another host needs ``force``.
        """
        data = self.read()
        e = self._find(data, entry_id)
        if e.status != "running":
            raise UsageError(f"entry {entry_id} is {e.status}, not running: nothing to settle")
        if not e.is_stale():
            if e.host == socket.gethostname():
                raise UsageError(f"entry {entry_id}: its process {e.pid} is still running; stop it first")
            if not force:
                raise UsageError(
                    f"entry {entry_id} was started on host {e.host!r}, where lvtime cannot check its "
                    "process; use --force once you know it has ended"
                )
        amount = e.estimated_flops if spent is None else check_flops(spent, "--spent")
        return self.finish(entry_id, amount, "settled")

    def _find(self, data: LedgerData, entry_id: str) -> Entry:
        for e in data.entries:
            if e.id == entry_id:
                return e
        raise LedgerError(f"{self.path}: no entry {entry_id!r}")

    def add(self, flops: float, label: str, kind: str = "manual", config: dict | None = None) -> Entry:
        """Record work done elsewhere (already spent)."""
        flops = check_flops(flops, "--flops")
        with self._locked() as data:
            entry = Entry(
                id=new_entry_id(),
                label=label,
                kind=kind,
                command=command_line(sys.argv),
                config=config or {},
                status="manual",
                estimated_flops=flops,
                spent_flops=flops,
                ended_at=now(),
            )
            data.entries.append(entry)
        return entry
