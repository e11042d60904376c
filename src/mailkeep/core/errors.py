"""Domain errors. What each means to an interface (the Administration API's details, the
console API's code and HTTP status, the command line's exit code, the notification a failed
process raises) is declared once, in the table of error_table.py, keyed by class."""

from __future__ import annotations


class MailkeepError(Exception):
    """Base of every error the domain raises on purpose; `message` is for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(MailkeepError):
    """The named object does not exist."""


class InvalidArgument(MailkeepError):
    """A value is missing or wrong; nothing was changed."""


class Conflict(MailkeepError):
    """The change conflicts with the current state (it exists already, it is running, ...)."""


class Forbidden(MailkeepError):
    """The caller may not do this."""


class StoreUnavailable(MailkeepError):
    """The store cannot be written or read in its current state."""


class CorruptData(MailkeepError):
    """Bytes on disk do not match what was written (checksum, hash, torn record)."""


class KeyMissing(MailkeepError):
    """An encrypted store needs a master key that is not available here."""


class Cancelled(Exception):  # noqa: N818  (a signal, not a failure)
    """A cancel was asked and the work stopped at a safe point (a process's check_cancelled(),
    Ctrl-C in the CLI). What was made durable before stays; the caller reports "cancelled"."""
