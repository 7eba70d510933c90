"""The ledger's entries and their one counting rule (what each takes from the budget),
validated so that a number that is not finite and >= 0 never enters a total. No torch.
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lvtime.errors import UsageError
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
