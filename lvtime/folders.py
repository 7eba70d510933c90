"""Output folders: checked before anything is spent, marked when lvtime makes them, and
replaced (``--force``) only when lvtime made them. No torch.

The rules, in one place for every command that writes a folder:

* an output path is never empty, never the working directory, one of its parents or
  the root, never a symlink, never an existing file, and never a folder that holds
  the ledger;
* a folder lvtime creates gets a marker file (:data:`MARKER`) naming its kind -- never a
  folder that already held something; ``--force`` deletes only a folder lvtime made for
  the same kind of output (for folders from before the marker: lvtime's ``config.json``
  / ``metrics.json`` / ``sweep.json``), never one that holds an input of the command
  (its data, adapter or model), and a sweep writes only into an empty folder or its own;
* a folder name made from values (sweep configurations) keeps only safe characters,
  has a bounded length, and carries a short hash of the values when it had to be
  changed, so distinct values never share a folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from lvtime.errors import RunFolderError, UsageError
from lvtime.layout import LOCK, MARKER, kind_from_files, read_bytes

_OURS = (MARKER, LOCK)  # what a folder holds before a run writes anything
_FAMILY = {"baseline": "forecast"}  # a baseline and a forecast folder hold the same files
MAX_NAME = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def check_out(path: str | os.PathLike, ledger_path: str | os.PathLike | None = None, what: str = "--out") -> Path:
    """``path`` as a Path if lvtime may write a folder there, else a one-line error.

    Pure checks (the file system is only read): call it before reserving FLOPs.
    """
    p = named_path(path, what, "a folder such as runs/NAME")
    if p.exists() and not p.is_dir():
        raise UsageError(f"{what} {p}: exists and is not a folder")
    resolved = p.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise UsageError(f"{what} {p}: is the working directory or one of its parents; name a sub-folder")
    if ledger_path is not None:
        ledger = Path(os.path.realpath(ledger_path))
        if resolved in ledger.parents or resolved == ledger:
            raise UsageError(f"{what} {p}: holds the ledger {ledger_path}; name another folder")
    check_can_create(p, what)
    return p


def named_path(path: str | os.PathLike, what: str, example: str) -> Path:
    """``path`` as a Path if it names something (not blank, no NUL) and is not a symlink."""
    text = os.fspath(path)
    if not text.strip():
        raise UsageError(f"{what}: empty path; name {example}")
    if "\0" in text:
        raise UsageError(f"{what}: the path contains a NUL character")
    p = Path(text)
    if p.is_symlink():
        raise UsageError(f"{what} {p}: is a symlink; name the target itself")
    return p


def check_can_create(p: Path, what: str) -> None:
    """The nearest existing ancestor of ``p`` is a folder this process may write in."""
    ancestor = p.resolve().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{what} {p}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {p}: {ancestor} is not writable")


def is_empty(path: Path) -> bool:
    """Missing, empty, or holding only lvtime's marker (a run stopped before it wrote
    anything: the same command may run there again)."""
    return not path.exists() or all(entry.name in _OURS for entry in path.iterdir())


def kind_of(path: Path) -> str | None:
    """What lvtime made the folder for (``finetune``, ``forecast``, ``baseline``,
    ``sweep``), from its marker or, for folders from before the marker, from lvtime's
    ``config.json`` / ``metrics.json`` / ``sweep.json``; None if lvtime did not make it."""
    if path.is_symlink() or not path.is_dir():
        return None
    try:
        return str(json.loads(read_bytes(path / MARKER, limit=4096))["kind"])
    except (RunFolderError, ValueError, KeyError, TypeError):
        return kind_from_files(path)


def create(path: Path, kind: str) -> None:
    """Make the folder (and parents) and mark it as lvtime's, unless it already held
    something: a marker on someone's folder would let a later ``--force`` delete it."""
    try:
        fresh = is_empty(path)
        path.mkdir(parents=True, exist_ok=True)
        if fresh:  # (re)mark: a marker left by a stopped run of another kind is replaced
            stamp = {"kind": kind, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            (path / MARKER).write_text(json.dumps(stamp) + "\n")
    except OSError as exc:
        raise UsageError(f"{path}: cannot create the output folder ({exc.strerror})") from None


def _family(kind: str | None) -> str | None:
    return _FAMILY.get(kind, kind)


def check_reusable(path: Path, kind: str, what: str) -> None:
    """Refuse to write into a non-empty folder that lvtime did not make for ``kind`` (a
    sweep folder is reused to resume; no other folder may receive a sweep's files)."""
    if not is_empty(path) and _family(kind_of(path)) != _family(kind):
        raise UsageError(f"{what} {path}: exists, is not empty and is not an lvtime {kind} folder; name a new folder")


def check_replaceable(path: Path, kind: str, inputs=(), what: str = "--force") -> None:
    """Refuse ``--force`` unless the folder is empty, or lvtime made it for the same kind
    of output (a forecast never replaces a training run and its adapter), and holds none
    of the ``inputs`` this command reads (data, adapter, model)."""
    if is_empty(path):
        return
    found = kind_of(path)
    if found is None:
        raise UsageError(f"{path}: exists and was not made by lvtime; {what} refuses to delete it")
    if _family(found) != _family(kind):
        raise UsageError(
            f"{path}: is an lvtime {found} folder; {what} will not replace it with a {kind}: choose another --out"
        )
    resolved = path.resolve()
    for item in filter(None, inputs):
        if not Path(item).exists():  # a hub id such as Qwen/... is no path
            continue
        target = Path(item).resolve()
        if resolved == target or resolved in target.parents:
            raise UsageError(
                f"{path}: holds {item}, which this command reads; {what} would delete it: choose another --out"
            )


def replace(path: Path, kind: str, inputs=()) -> None:
    """Empty an lvtime folder (checked by :func:`check_replaceable`) and mark it anew.
    Its lock file stays: the process replacing it may hold it."""
    check_replaceable(path, kind, inputs)
    if path.exists():
        for entry in path.iterdir():
            if entry.name == LOCK:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        (path / MARKER).unlink(missing_ok=True)
    create(path, kind)


def holder(path: Path) -> str | None:
    """Who holds the folder's lock (``process 123 on host``), or None if nobody does."""
    lock = path / LOCK
    if not lock.is_file():
        return None
    with open(lock) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(f.read())
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def _describe(text: str) -> str:
    try:
        who = json.loads(text)
        return f"lvtime process {who['pid']} on {who['host']} (since {who['since']})"
    except (ValueError, KeyError, TypeError):
        return "another lvtime process"


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold ``path``'s lock while this process writes it: a second lvtime process on the
    same folder is refused, naming the one that holds it. The kernel releases the lock
    when the holder dies, even by ``kill -9``. A folder made only to be locked, and left
    empty (the run was refused), is removed again."""
    made = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UsageError(f"{path}: cannot create the output folder ({exc.strerror})") from None
    with os.fdopen(fd, "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(f"{path}: in use by {_describe(f.read())}; wait for it to end") from None
        f.truncate(0)
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%H:%M:%S")}))
        f.flush()
        try:
            yield
        finally:
            if made and is_empty(path):
                shutil.rmtree(path, ignore_errors=True)


def safe_name(values: dict, readable: str) -> str:
    """A folder name for ``readable`` (made from ``values``) that is safe and unique.

    Unsafe characters become ``_``, leading dots and dashes go, the length is bounded;
    when anything had to change, a hash of the exact values is appended so that two
    configurations never share a folder.
    """
    name = _UNSAFE.sub("_", readable).lstrip(".-_")
    name = name.replace("..", "_")
    if name == readable and 0 < len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}-{digest}" if name else digest
