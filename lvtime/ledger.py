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
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import stat
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lvtime import signals
from lvtime.errors import BudgetError, Interrupted, LedgerError, UsageError, first_error
from lvtime.flops import BUDGET

SCHEMA = "lvtime-ledger/1"
DEFAULT_PATH = "lvtime-ledger.json"
Status = Literal["running", "completed", "failed", "interrupted", "manual", "settled"]
# No real run comes near this; a bound keeps every sum of entries finite (two entries of
# 1e308 would add up to inf, which JSON cannot hold).
MAX_FLOPS = 1e30


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_entry_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def check_flops(value: float, what: str) -> float:
    """``value`` as a float if it is finite and >= 0, else a one-line usage error."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise UsageError(f"{what} must be a finite number >= 0, not {value!r}")
    if x > MAX_FLOPS:
        raise UsageError(f"{what}: {x:.3g} is above {MAX_FLOPS:.0e} FLOPs, more than any run; not recorded")
    return x


class Entry(BaseModel):
    """One run (or one record of work done elsewhere).

    Every number is finite and >= 0: NaN or a negative spend would switch the budget
    off, so a file holding one is refused like a corrupt file.
    """

    id: str
    label: str
    kind: str = Field("other", description="finetune, baseline, forecast, sweep, manual, ...")
    command: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    status: Status = "running"
    estimated_flops: float = Field(0.0, ge=0, le=MAX_FLOPS, allow_inf_nan=False)
    spent_flops: float | None = Field(None, ge=0, le=MAX_FLOPS, allow_inf_nan=False)
    started_at: str = Field(default_factory=now)
    ended_at: str | None = None
    outputs: list[str] = Field(default_factory=list)
    pid: int | None = None
    host: str | None = None
    over_budget: bool = Field(False, description="Started with --allow-over-budget.")

    @model_validator(mode="after")
    def _countable(self) -> Entry:
        if self.status != "running" and self.spent_flops is None:  # the rule below could not count it
            raise ValueError(f"entry {self.id!r} is {self.status} but records no spent_flops")
        return self

    @property
    def counted(self) -> float:
        """What this entry takes from the budget -- the one rule every total uses: a
        running entry its reservation, a closed one what it spent."""
        return self.estimated_flops if self.status == "running" else self.spent_flops

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
    budget: float = Field(BUDGET, gt=0, le=MAX_FLOPS, allow_inf_nan=False)
    created_at: str = Field(default_factory=now)
    entries: list[Entry] = Field(default_factory=list)

    model_config = ConfigDict(populate_by_name=True)

    @model_validator(mode="after")
    def _unique_ids(self) -> LedgerData:
        seen: set[str] = set()
        for e in self.entries:  # a second copy could never be settled: finish() finds the first
            if e.id in seen:
                raise ValueError(f"two entries have the id {e.id!r}")
            seen.add(e.id)
        return self

    def totals(self) -> dict[str, float]:
        spent = sum(e.counted for e in self.entries if e.status != "running")
        reserved = sum(e.counted for e in self.entries if e.status == "running")
        return {
            "budget": self.budget,
            "spent": spent,
            "reserved": reserved,
            "remaining": self.budget - spent - reserved,
            "used_fraction": (spent + reserved) / self.budget if self.budget else 0.0,
        }


def default_path() -> Path:
    return Path(os.environ.get("LVTIME_LEDGER") or DEFAULT_PATH)


class Reservation:
    """A running entry; the work sets ``spent`` as it goes (what settles the entry if it
    stops early: the ledger never under-counts what was really done)."""

    def __init__(self, entry: Entry):
        self.entry = entry
        self.spent = 0.0

    @property
    def id(self) -> str:
        return self.entry.id


class Ledger:
    """A ledger file. Cheap to construct; every method reads the file afresh.

    ``path`` is what the user named (shown in messages); reads, the lock and the atomic
    replace go to the file it resolves to, so a symlinked ledger stays a symlink.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_path()

    @property
    def real_path(self) -> Path:
        return Path(os.path.realpath(self.path))

    @property
    def lock_path(self) -> Path:
        real = self.real_path
        return real.with_name(real.name + ".lock")

    # --- reading ----------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> LedgerData:
        """The ledger's contents; an absent file reads as an empty ledger."""
        if not self.path.exists():
            if self.path.is_symlink():
                raise LedgerError(f"{self.path}: a symlink to a missing file ({self.real_path}); left untouched")
            return LedgerData()
        if self.path.is_dir():
            raise LedgerError(f"{self.path}: is a directory, not a ledger file")
        try:
            raw = self.path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot read ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise LedgerError(f"{self.path}: not UTF-8 text, so not an lvtime ledger; left untouched") from None
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LedgerError(
                f"{self.path}: corrupt or truncated ledger ({exc.msg} at line {exc.lineno}); "
                "left untouched - fix or move it aside"
            ) from None
        if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
            raise LedgerError(f"{self.path}: not an lvtime ledger (expected schema {SCHEMA!r}); left untouched")
        missing = [key for key in ("budget", "entries") if key not in obj]
        if missing:  # never filled in with defaults: a lost budget line would reset the limit
            raise LedgerError(f"{self.path}: invalid ledger (no {missing[0]!r}); left untouched")
        try:
            return LedgerData.model_validate(obj)
        except ValidationError as exc:
            raise LedgerError(f"{self.path}: invalid ledger ({first_error(exc)}); left untouched") from None

    def budget(self) -> float:
        return self.read().budget

    # --- writing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[LedgerData]:
        """Exclusive lock, yield the current data for editing, write it back atomically."""
        real = self.real_path
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.lock_path, "a")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot lock the ledger ({exc.strerror}: {exc.filename})") from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = self.read()
                yield data
                self._write(data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, data: LedgerData) -> None:
        real = self.real_path
        mode = None
        if real.exists():
            mode = stat.S_IMODE(real.stat().st_mode)
            if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
                raise LedgerError(f"{self.path}: the ledger file is read-only; nothing was recorded")
        text = json.dumps(data.model_dump(mode="json", by_alias=True), indent=2) + "\n"
        tmp = real.with_name(f".{real.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
        try:
            with open(tmp, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            if mode is not None:
                os.chmod(tmp, mode)  # the replaced file keeps its permissions
            os.replace(tmp, real)
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot write the ledger ({exc.strerror}); nothing was recorded") from None
        finally:
            if tmp.exists():
                tmp.unlink()
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(real.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

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
                command=command if command is not None else " ".join(sys.argv),
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
                command=" ".join(sys.argv),
                config=config or {},
                status="manual",
                estimated_flops=flops,
                spent_flops=flops,
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
