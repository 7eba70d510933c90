"""The errors a user can cause, each with the exit code a shell script sees.

The CLI turns every :class:`LvtimeError` into one line on stderr and this exit code;
anything else is a bug and keeps its traceback.
"""


class LvtimeError(Exception):
    """Base class: a problem the user can fix. Exit code 1."""

    exit_code = 1


class UsageError(LvtimeError):
    """Flags or arguments that do not make sense together. Exit code 2."""

    exit_code = 2


class DataError(LvtimeError):
    """A dataset file that is missing, unreadable or not in the expected layout."""


class TokenizerError(LvtimeError):
    """No tokenizer could be loaded, or it cannot represent LLMTIME text."""


class ModelError(LvtimeError):
    """A model or adapter that cannot be loaded or does not match."""


class LedgerError(LvtimeError):
    """A ledger file that is corrupt, foreign or locked."""


class RunFolderError(LvtimeError):
    """A run folder's file that is corrupt, or a folder another process is writing."""


class BudgetError(LvtimeError):
    """The run would exceed the FLOP budget. Exit code 3."""

    exit_code = 3


class TrainingError(LvtimeError):
    """Training stopped: non-finite loss, nothing to train on, ..."""


class Interrupted(LvtimeError):
    """Ctrl-C or SIGTERM; work was saved. Exit code 130 (like a shell). Not a failure:
    the CLI says it as ``lvtime: stopped ...``, not as an error."""

    exit_code = 130


def first_error(exc, whole: str = "options") -> str:
    """``field.path: message`` of a pydantic ``ValidationError``'s first error, in one line
    (``whole`` names the location of an error about the model as a whole)."""
    first = exc.errors()[0]
    message = first["msg"].removeprefix("Value error, ")  # our own validators' words, as written
    return f"{'.'.join(str(p) for p in first['loc']) or whole}: {message}"
