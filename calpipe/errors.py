"""Errors a user can cause. Each carries one line that says what, where and what was expected.

They derive from stpipe's exit exception so that `strun` exits with status 2 after printing
the message, without a traceback; from Python they are ordinary exceptions.
"""

from stpipe.exceptions import StpipeExitException

EXIT_STATUS = 2


class CalpipeError(StpipeExitException):
    def __init__(self, message):
        super().__init__(EXIT_STATUS, message)
        self.message = message

    def __str__(self):
        return self.message


class InputError(CalpipeError, ValueError):
    """Input data that cannot be calibrated as given (wrong shape, NaNs where none may be, ...)."""
