"""The FLOP budget ledger: one JSON file shared by every run in a working directory.

Protocol for a spending command::

    entry = ledger.reserve("finetune r4", kind="finetune", estimate=6.8e15, config=cfg)
    ...                                           # the work
    ledger.finish(entry.id, spent=6.7e15, status="completed")

A reservation counts against the budget at its estimate until it is finished, so a
process that dies never makes the ledger under-count; ``lvtime ledger`` marks such
entries stale. Every read-modify-write holds an exclusive ``flock`` on a sidecar lock
file, and every write goes to a temp file that is fsynced and atomically renamed, so
concurrent shell-scripted runs neither lose entries nor leave a torn file. A file
that is corrupt, truncated or not a ledger is reported and never overwritten. No torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from lvtime.errors import BudgetError, LedgerError, UsageError
from lvtime.flops import BUDGET

SCHEMA = "lvtime-ledger/1"
DEFAULT_PATH = "lvtime-ledger.json"
Status = Literal["running", "completed", "failed", "interrupted", "manual"]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Entry(BaseModel):
    """One run (or one record of work done elsewhere)."""

    id: str
    label: str
    kind: str = Field("other", description="finetune, baseline, forecast, sweep, manual, ...")
    command: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    status: Status = "running"
    estimated_flops: float = 0.0
    spent_flops: float | None = None
    started_at: str = Field(default_factory=now)
    ended_at: str | None = None
    outputs: list[str] = Field(default_factory=list)
    pid: int | None = None
    host: str | None = None
    over_budget: bool = Field(False, description="Started with --allow-over-budget.")

    @property
    def counted(self) -> float:
        """What this entry takes from the budget: the spend when known, else the estimate."""
        if self.status == "running" or self.spent_flops is None:
            return self.estimated_flops
        return self.spent_flops

    def is_stale(self) -> bool:
        """A running entry whose process on this host is gone."""
        if self.status != "running" or self.pid is None or self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


class LedgerData(BaseModel):
    schema_: str = Field(SCHEMA, alias="schema")
    budget: float = BUDGET
    created_at: str = Field(default_factory=now)
    entries: list[Entry] = Field(default_factory=list)

    model_config = {"populate_by_name": True}

    def totals(self) -> dict[str, float]:
        spent = sum(e.spent_flops or 0.0 for e in self.entries if e.status != "running")
        reserved = sum(e.estimated_flops for e in self.entries if e.status == "running")
        return {
            "budget": self.budget,
            "spent": spent,
            "reserved": reserved,
            "remaining": self.budget - spent - reserved,
            "used_fraction": (spent + reserved) / self.budget if self.budget else 0.0,
        }


def default_path() -> Path:
    return Path(os.environ.get("LVTIME_LEDGER") or DEFAULT_PATH)


class Ledger:
    """A ledger file. Cheap to construct; every method reads the file afresh."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_path()
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    # --- reading ----------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> LedgerData:
        """The ledger's contents; an absent file reads as an empty ledger."""
        if not self.path.exists():
            return LedgerData()
        try:
            raw = self.path.read_text()
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot read ({exc.strerror})") from None
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LedgerError(
                f"{self.path}: corrupt or truncated ledger ({exc.msg} at line {exc.lineno}); "
                "left untouched - fix or move it aside"
            ) from None
        if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
            raise LedgerError(f"{self.path}: not an lvtime ledger (expected schema {SCHEMA!r}); left untouched")
        try:
            return LedgerData.model_validate(obj)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise LedgerError(f"{self.path}: invalid ledger ({where}: {first['msg']}); left untouched") from None

    def budget(self) -> float:
        return self.read().budget

    # --- writing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[LedgerData]:
        """Exclusive lock, yield the current data for editing, write it back atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = self.read()
                yield data
                self._write(data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, data: LedgerData) -> None:
        text = json.dumps(data.model_dump(mode="json", by_alias=True), indent=2) + "\n"
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
        try:
            with open(tmp, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            if tmp.exists():
                tmp.unlink()
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def init(self, budget: float = BUDGET, force: bool = False) -> LedgerData:
        """Create the ledger with ``budget``; an existing one only has its budget changed
        with ``force`` (its entries are always kept)."""
        if not budget > 0:
            raise UsageError("--budget must be positive")
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
        if estimate < 0:
            raise UsageError("a FLOP estimate cannot be negative")
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
                id=f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}",
                label=label,
                kind=kind,
                command=command if command is not None else " ".join(sys.argv),
                config=config or {},
                estimated_flops=float(estimate),
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
        with self._locked() as data:
            for e in data.entries:
                if e.id == entry_id:
                    e.status = status
                    e.spent_flops = float(spent)
                    e.ended_at = now()
                    if outputs:
                        e.outputs = sorted(set(e.outputs) | set(outputs))
                    return e
        raise LedgerError(f"{self.path}: no entry {entry_id!r}")

    def add(self, flops: float, label: str, kind: str = "manual", config: dict | None = None) -> Entry:
        """Record work done elsewhere (already spent)."""
        if flops < 0:
            raise UsageError("--flops cannot be negative")
        with self._locked() as data:
            entry = Entry(
                id=f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}",
                label=label,
                kind=kind,
                command=" ".join(sys.argv),
                config=config or {},
                status="manual",
                estimated_flops=float(flops),
                spent_flops=float(flops),
                ended_at=now(),
            )
            data.entries.append(entry)
        return entry


# --- report tables --------------------------------------------------------------------

EVAL_KINDS = ("baseline", "forecast")


def report_rows(data: LedgerData) -> list[dict[str, Any]]:
    """The study's experiment table: training rows, a subtotal before the final run,
    evaluation rows, the total and what remains. Each row has ``experiment``,
    ``kind``, ``status``, ``steps``, ``flops``, ``percent`` and ``cumulative``."""
    rows: list[dict[str, Any]] = []
    cumulative = 0.0

    def row(e: Entry) -> dict[str, Any]:
        nonlocal cumulative
        cumulative += e.counted
        return {
            "experiment": e.label,
            "kind": e.kind,
            "status": "stale" if e.is_stale() else e.status,
            "steps": e.config.get("steps", ""),
            "flops": e.counted,
            "percent": 100 * e.counted / data.budget,
            "cumulative": cumulative,
        }

    def subtotal(name: str) -> dict[str, Any]:
        return {
            "experiment": name,
            "kind": "",
            "status": "",
            "steps": "",
            "flops": cumulative,
            "percent": 100 * cumulative / data.budget,
            "cumulative": cumulative,
        }

    training = [e for e in data.entries if e.kind not in EVAL_KINDS]
    evaluation = [e for e in data.entries if e.kind in EVAL_KINDS]
    final_seen = False
    for e in training:
        if not final_seen and "final" in e.label.lower():
            rows.append(subtotal("Subtotal before the final run"))
            final_seen = True
        rows.append(row(e))
    if training:
        rows.append(subtotal("Training total"))
    for e in evaluation:
        rows.append(row(e))
    rows.append(subtotal("Total"))
    remaining = data.budget - cumulative
    rows.append(
        {
            "experiment": "Remaining budget",
            "kind": "",
            "status": "",
            "steps": "",
            "flops": remaining,
            "percent": 100 * remaining / data.budget,
            "cumulative": "",
        }
    )
    return rows
