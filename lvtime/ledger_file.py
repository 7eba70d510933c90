"""The ledger's file: where it is (a symlink is followed to the file it names), how it is
read and validated, locked (an exclusive ``flock`` on a sidecar lock file around every
read-modify-write) and replaced (a temp file, fsynced, atomically renamed). A file that is
corrupt, truncated or not a ledger is reported and never overwritten. No torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from lvtime.errors import LedgerError, first_error
from lvtime.ledger_entries import SCHEMA, LedgerData

DEFAULT_PATH = "lvtime-ledger.json"


def default_path() -> Path:
    return Path(os.environ.get("LVTIME_LEDGER") or DEFAULT_PATH)


class LedgerFile:
    """The ledger's file: reading and validating it, its lock, atomic writes. Cheap to
    construct; every read goes to the file afresh.

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
