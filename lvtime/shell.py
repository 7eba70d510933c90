"""Commands printed for people and scripts to paste or run: one quoting rule for all.

Every command lvtime prints (resume hints, a sweep's best command, ``--print-commands``
job lines, a search's worker command) goes through :func:`command_line`, so it pastes as
exactly the argv it means, on one line: a name holding ``$(...)``, a space, a quote or a
newline is quoted, never run or split. Plain words stay bare so commands read naturally.
"""

from __future__ import annotations

import re
import shlex
import sys

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def quote(word: str) -> str:
    """``word`` as one shell word: POSIX quoting, or ANSI-C ``$'...'`` (bash, zsh, ksh,
    POSIX.1-2024 sh) when it holds a newline or another control character, which a
    quoted line would otherwise carry onto the next line."""
    if not _CONTROL.search(word):
        return shlex.quote(word)
    escaped = word.replace("\\", "\\\\").replace("'", "\\'")
    return "$'" + escape_control(escaped) + "'"


def escape_control(text: str) -> str:
    """``text`` with each control character written as ``\\xNN``: one line, nothing a
    terminal acts on."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def say(message: str) -> None:
    """One ``lvtime: ...`` line on stderr (errors, warnings, notes); a name in it is
    shown, never acted on."""
    print(f"lvtime: {escape_control(message)}", file=sys.stderr)


def markdown_cell(text) -> str:
    """``text`` as one Markdown table cell: control characters escaped, pipes too, so a
    name can neither break the table nor act on a terminal that shows it."""
    return escape_control(str(text)).replace("|", "\\|")


def command_line(argv: list[str]) -> str:
    """One line that a shell turns back into ``argv``."""
    return " ".join(quote(str(a)) for a in argv)
