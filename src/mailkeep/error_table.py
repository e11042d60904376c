"""The one error table: what each error means to each interface, keyed by exception class.

For every class: the Administration API's `details` (its `message` is the error's own), the
management-console API's code (and through MCAPI_CODES its HTTP status), the command line's
exit code, and the notification a failed process raises (None: the caller was told at once,
no administrator needs a mail). A class not in the table takes the entry of its nearest
ancestor; an exception that is no MailkeepError at all is unexpected (a bug or the machine):
it takes the entry of Exception, and its details are its class name.
"""

from __future__ import annotations

from mailkeep.core.errors import (
    Cancelled,
    Conflict,
    CorruptData,
    Forbidden,
    InvalidArgument,
    KeyMissing,
    MailkeepError,
    NotFound,
    StoreUnavailable,
)

# The console API's codes: HTTP status and meaning (docs/mcapi.md prints this table).
MCAPI_CODES: dict[int, tuple[int, str]] = {
    1001: (400, "the request body is not valid JSON or form data"),
    1002: (400, "an argument is missing, unknown or invalid"),
    1003: (404, "no such function"),
    1004: (404, "the named object does not exist"),
    1005: (405, "the function is called with another HTTP method"),
    1006: (409, "the change conflicts with the current state"),
    1007: (413, "the request body is larger than the server takes"),
    1008: (408, "the request body did not arrive in time"),
    2001: (401, "wrong user name or password"),
    2002: (429, "too many failed logins: locked for a while"),
    2003: (403, "the account may not log in to the management console"),
    2004: (401, "the account logs in with a one-time code as well: send code"),
    2005: (503, "the directory is busy with other logins: try again in a moment"),
    3001: (403, "not logged in (no, unknown or expired session)"),
    3002: (403, "the session's role may not call this function"),
    5000: (500, "the server could not complete the request"),
    5001: (500, "the configuration file could not be read"),
    5002: (500, "the configuration file could not be written"),
    5003: (500, "the configuration file could not be parsed"),
    5009: (500, "the test mail could not be sent"),
}
FAILED = "process.failed"
CANCELLED_EVENT = "process.cancelled"


class ErrorSpec:
    """How one class of error is told through each interface. (A plain class: the search from
    the command line imports neither typing nor dataclasses, cli/entry.py.)"""

    __slots__ = ("details", "mcapi", "exit", "event")

    def __init__(self, details: str, mcapi: int, exit: int, event: str | None) -> None:
        self.details = details  # the Administration API's error.details ("" for its own)
        self.mcapi = mcapi  # the console API's code
        self.exit = exit  # the command line's exit code
        self.event = event  # the notification a failed process raises, None for none


# The classes of the core by class; the others by their module and name, so that what reads
# this table (a command line answering in milliseconds) imports none of their modules. A
# class's entry is its own or that of its nearest ancestor.
ERRORS: dict[type[BaseException] | str, ErrorSpec] = {
    InvalidArgument: ErrorSpec("invalid_argument", 1002, 2, None),
    "mailkeep.functions.registry.ApiArgumentError": ErrorSpec("invalid_argument", 1002, 2, None),
    "mailkeep.functions.registry.UnknownFunction": ErrorSpec("unknown_function", 1003, 2, None),
    NotFound: ErrorSpec("not_found", 1004, 3, None),
    Conflict: ErrorSpec("conflict", 1006, 4, None),
    Forbidden: ErrorSpec("forbidden", 3002, 8, None),
    StoreUnavailable: ErrorSpec("store_unavailable", 5000, 5, FAILED),
    "mailkeep.core.pgconn.DatabaseUnavailable": ErrorSpec("database_unavailable", 5000, 5,
                                                          FAILED),
    CorruptData: ErrorSpec("corrupt_data", 5000, 6, FAILED),
    KeyMissing: ErrorSpec("key_missing", 5000, 7, FAILED),
    "mailkeep.profiles.store.ProfileSecretError": ErrorSpec("key_missing", 5000, 7, FAILED),
    # details: their own (the damaged messages; why; send_failed:<step>)
    "mailkeep.core.storage.verify.VerifyFailed": ErrorSpec("", 5000, 1, "verify.damage"),
    "mailkeep.core.storage.verify.RecoverFailed": ErrorSpec("", 5000, 1, FAILED),
    "mailkeep.notify.config.ConfigReadError": ErrorSpec("config_read", 5001, 1, FAILED),
    "mailkeep.notify.config.ConfigWriteError": ErrorSpec("config_write", 5002, 1, FAILED),
    "mailkeep.notify.config.ConfigParseError": ErrorSpec("config_parse", 5003, 1, FAILED),
    "mailkeep.notify.mailer.SendFailed": ErrorSpec("", 5009, 1, None),
    # a profile's run: it raised its own notification
    "mailkeep.profiles.run.RunFailed": ErrorSpec("source_unavailable", 5000, 1, None),
    Cancelled: ErrorSpec("cancelled", 5000, 130, CANCELLED_EVENT),
    MailkeepError: ErrorSpec("error", 5000, 1, FAILED),
    Exception: ErrorSpec("", 5000, 1, FAILED),  # details: the class name
}


def spec(exc: BaseException) -> ErrorSpec:
    for cls in type(exc).__mro__:
        found = ERRORS.get(cls) or ERRORS.get(f"{cls.__module__}.{cls.__qualname__}")
        if found is not None:
            return found
    return ERRORS[Exception]


def message(exc: BaseException) -> str:
    """What the error says to people (never a traceback)."""
    if isinstance(exc, MailkeepError):
        return exc.message
    if isinstance(exc, Cancelled):
        return "The function was cancelled."
    return str(exc) or type(exc).__name__


def details(exc: BaseException) -> str:
    """The Administration API's error.details."""
    own = getattr(exc, "details", None)  # VerifyFailed, RecoverFailed, SendFailed: their own
    if isinstance(own, str) and own and isinstance(exc, MailkeepError):
        return own
    return spec(exc).details or type(exc).__name__


def api_error(exc: BaseException) -> tuple[str, str]:
    """(message, details) of the Administration API's error object."""
    return message(exc), details(exc)


def mcapi_error(exc: BaseException) -> tuple[int, int, str]:
    """(HTTP status, code, message) of the console API's error envelope."""
    code = spec(exc).mcapi
    return MCAPI_CODES[code][0], code, message(exc)


def exit_code(exc: BaseException) -> int:
    return spec(exc).exit


def event(exc: BaseException) -> str | None:
    """The notification kind a failed (or cancelled) process raises for this error."""
    return spec(exc).event
