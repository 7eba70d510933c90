"""Output files (``simulate OUT``, ``encode -o``, ``ledger export -o``, ``report -o``): checked before
any work, written atomically, and replaced (``--force``) only when lvtime wrote them.
No torch.

The rules, in one place for every command that writes a single file:

* an output path is never empty, never a folder and never a symlink, and what exists there
  is a regular file: a device (``/dev/null``), a FIFO or a socket is refused with or
  without ``--force`` (and never opened: a FIFO would block);
* an existing file is kept unless ``--force``, and even then only a file that is what
  this command writes (a dataset lvtime simulated, text that looks like lvtime's
  encoding or ledger table) is replaced: a study dataset, a model, a ledger or
  someone's notes named by mistake survive any command line;
* the new content goes to a temporary file beside it and is renamed over the name, so
  Ctrl-C or a full disk never leaves half a file, nor destroys the old one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lvtime import folders
from lvtime.errors import UsageError

DATASET_MARK = "lvtime"  # HDF5 root attribute lvtime simulate writes
_SNIFF_BYTES = 4096
_LLMTIME_TEXT = re.compile(r"[0-9.,;\s]*")


def check(path: str | os.PathLike, force: bool, kind: str, what: str = "--out", ledger=None) -> Path:
    """``path`` as a Path if a ``kind`` file ("dataset", "encoding", "ledger-table",
    "report") may be written there, else a one-line :class:`UsageError`. Never the ledger's
    path (``ledger``, else the default one), even before the ledger exists: a file there
    would be read as a corrupt ledger by every command. Only reads the file system."""
    from lvtime.ledger import default_path

    p = folders.named_path(path, what, "a file")
    if p.is_dir():
        raise UsageError(f"{what} {p}: is a folder; name a file inside it")
    if os.path.realpath(p) == os.path.realpath(ledger or default_path()):
        raise UsageError(f"{what} {p}: is the ledger's path; name another file")
    kind_of = _not_regular(p)
    if kind_of:
        raise UsageError(f"{what} {p}: is {kind_of}, not a regular file; lvtime writes only regular files")
    if p.exists():
        if not force:
            raise UsageError(f"{what} {p}: already exists (use --force to overwrite)")
        if not written_by_lvtime(p, kind):
            raise UsageError(
                f"{what} {p}: exists and is not {_DESCRIPTION[kind]}; --force replaces only files lvtime wrote. "
                "Choose another name, or move the file aside yourself"
            )
    folders.check_can_create(p, what)
    return p


def _not_regular(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file or folder (None otherwise)."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    kinds = {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device", stat.S_ISFIFO: "a FIFO",
             stat.S_ISSOCK: "a socket"}  # fmt: skip
    return next((name for test, name in kinds.items() if test(mode)), None)


def written_by_lvtime(path: Path, kind: str) -> bool:
    """Whether the existing file at ``path`` is one that a ``kind`` write may replace (a
    regular file only: an empty one holds nothing to lose)."""
    if not path.is_file() or _not_regular(path):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return False
    if not head:
        return True  # an empty file holds nothing to lose
    if kind == "dataset":
        return _is_lvtime_dataset(path)
    text = _utf8(head)
    if text is None or "\0" in text:
        return False  # binary: weights, a dataset, an archive
    if kind == "encoding":
        first = text.lstrip()[:1]
        return bool(_LLMTIME_TEXT.fullmatch(text)) or (first in "[{" and '"text"' in text and '"alpha"' in text)
    if kind == "ledger-table":
        return text.startswith("FLOP budget:") or text.startswith("experiment,")
    if kind == "report":
        return '<meta name="generator" content="lvtime report' in text
    raise ValueError(f"unknown output kind {kind!r}")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (checked by :func:`check` first)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror}); nothing was replaced") from None
    finally:
        tmp.unlink(missing_ok=True)


def _is_lvtime_dataset(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return DATASET_MARK in f.attrs
    except (OSError, ValueError):
        return False


def _utf8(head: bytes) -> str | None:
    """``head`` as text, allowing for a multibyte character cut at the sniffing limit."""
    for cut in range(4 if len(head) == _SNIFF_BYTES else 1):
        try:
            return head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


_DESCRIPTION = {
    "dataset": "a dataset lvtime simulate wrote",
    "encoding": "lvtime encode output",
    "ledger-table": "an lvtime ledger table",
    "report": "a page lvtime report wrote",
}
