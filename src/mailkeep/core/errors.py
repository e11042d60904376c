"""Domain errors. Each carries a stable code; transports map codes to their own shapes."""

from __future__ import annotations


class MailkeepError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(MailkeepError):
    code = "not_found"


class InvalidArgument(MailkeepError):
    code = "invalid_argument"


class Conflict(MailkeepError):
    code = "conflict"


class StoreUnavailable(MailkeepError):
    """The store cannot be written or read in its current state."""

    code = "store_unavailable"


class CorruptData(MailkeepError):
    """Bytes on disk do not match what was written (checksum, hash, torn record)."""

    code = "corrupt_data"


class KeyMissing(MailkeepError):
    """An encrypted store needs a master key that is not available here."""

    code = "key_missing"


class Cancelled(Exception):  # noqa: N818  (a signal, not a failure)
    """A cancel was asked and the work stopped at a safe point (a process's check_cancelled(),
    Ctrl-C in the CLI). What was made durable before stays; the caller reports "cancelled"."""
