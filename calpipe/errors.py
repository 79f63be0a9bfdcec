"""The one family of errors a user can cause, and the exit status they map to.

Part of calpipe's bottom layer (no imports from the rest of calpipe, nor from asdf or
stpipe). Each error carries one line that says what is wrong, where, and what was
expected. Every command turns a :class:`CalpipeError` into that line on stderr and exit
status 2 (``calpipe`` in :mod:`calpipe.cli`, ``strun`` through :mod:`calpipe._stpipe_hooks`);
from Python they are ordinary exceptions.
"""

EXIT_STATUS = 2
"""Exit status of a command stopped by a user's mistake or its environment."""


class CalpipeError(Exception):
    """Base of every error calpipe reports to a user as one line."""

    exit_status = EXIT_STATUS

    def __init__(self, message):
        super().__init__(message)
        self.message = _one_line(message)

    def __str__(self):
        return self.message


class InputError(CalpipeError, ValueError):
    """Input data that cannot be calibrated as given (wrong shape, NaNs where none may be, ...)."""


class EnvironmentProblem(CalpipeError, OSError):
    """The machine refused: a folder that is not writable, a full disk, a locked database."""


def _one_line(message):
    text = " ".join(str(message).split())
    return text or "unknown error"


def describe_os_error(err):
    """One line for an OSError: what failed, on which path."""
    what = err.strerror or type(err).__name__
    where = err.filename if err.filename is not None else ""
    return f"{where}: {what}" if where else what
