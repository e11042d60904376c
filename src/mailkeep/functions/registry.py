"""The function catalog: every administrative operation declared once.

A declaration names the function, its arguments (core.fields.Field: typed, as the
Administration API's get-metadata lists them), what it returns, the console roles that may
call it, whether it may run long and whether it changes anything. The one invoke path
(functions/invoke.py) and every interface over it (the Administration API, the console API,
the scheduler, the command line) and the reference in docs/ are projections of these
declarations; none of them declares an operation again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mailkeep.core.errors import InvalidArgument, MailkeepError
from mailkeep.core.fields import Field, FieldError


class ApiArgumentError(InvalidArgument):
    """An argument is missing, unknown or malformed; the call changes nothing."""


class UnknownFunction(MailkeepError):
    """There is no function of that name in the catalog."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown API function {name}.")
        self.name = name


@dataclass(frozen=True)
class McRoute:
    """Where a function is reached in the management-console API (`/mcapi/<path>`) too."""

    path: str  # e.g. "mail/configuration/get"
    method: str = "POST"
    body: str | None = None  # the arguments arrive inside this key of the JSON body
    arg: str | None = None  # ... and go, as one object, into this json argument
    result: str | None = None  # data holds the result under this key; None: data is the
    # result itself ({} for null); "": data is always {}


@dataclass(frozen=True)
class Function:
    name: str
    description: str
    result: str
    run: Callable[[Any], Any]  # takes a functions.call.Call
    args: tuple[Field, ...] = ()
    long_running: bool = False
    changes: bool = True  # writes to the archive or settings
    mcapi: McRoute | None = None
    roles: tuple[str, ...] = ("administrator",)  # console roles that may call it
    # what else of the arguments the audit log may not keep (SetSetting: a secret setting's
    # value), beyond its secret fields
    redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # run in a process of its own in the server (functions/isolated.py): long Python work that
    # must not hold the server's interpreter, and needs nothing of the server's process
    isolated: bool = False

    @property
    def audited(self) -> bool:
        """Every call of a function that changes something or runs as a process is written to
        the audit log (a sensor asking GetServerInfo every minute is not)."""
        return self.changes or self.long_running

    def audit_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments as the audit log may keep them: secrets masked."""
        shown = {a.name: a.shown(args[a.name]) for a in self.args if a.name in args}
        return self.redact(shown) if self.redact is not None else shown

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "args": [_arg_metadata(a) for a in self.args],
            "description": self.description,
            "result": self.result,
            "longRunning": self.long_running,
            "roles": list(self.roles),
        }


def _arg_metadata(a: Field) -> dict[str, Any]:
    """An argument as get-metadata lists it. One the original added in a later version is
    optional (nullable) here, and says which value stands in when it is left out: the
    behaviour of the versions before it."""
    out: dict[str, Any] = {"name": a.name, "type": a.api_type,
                           "nullable": a.nullable or a.default is not None}
    if a.default is not None:
        out["default"] = a.default
    return out


@dataclass
class Registry:
    functions: dict[str, Function] = field(default_factory=dict)

    def add(self, fn: Function) -> Function:
        if fn.name in self.functions:
            raise ValueError(f"function {fn.name} is declared twice")
        self.functions[fn.name] = fn
        return fn

    def get(self, name: str) -> Function | None:
        fn = self.functions.get(name)
        if fn is None:  # exact first; case-insensitively as a harmless fallback
            fn = next((f for n, f in self.functions.items() if n.lower() == name.lower()), None)
        return fn

    def find(self, name: str) -> Function:
        fn = self.get(name)
        if fn is None:
            raise UnknownFunction(name)
        return fn

    def __iter__(self) -> Iterator[Function]:
        return iter(sorted(self.functions.values(), key=lambda f: f.name))

    def metadata(self) -> list[dict[str, Any]]:
        return [f.metadata() for f in self] + PROTOCOL_ENDPOINTS


REGISTRY = Registry()

# The protocol's own endpoints, listed in get-metadata as the original lists them.
PROTOCOL_ENDPOINTS: list[dict[str, Any]] = [
    {"name": "get-status", "path": "api/", "args": [
        {"name": "token", "type": "string", "nullable": False},
        {"name": "lastKnownStatusVersion", "type": "number", "nullable": False},
        {"name": "millisecondsTimeout", "type": "number", "nullable": False}]},
    {"name": "cancel-async", "path": "api/", "args": [
        {"name": "token", "type": "string", "nullable": False}]},
    {"name": "get-metadata", "path": "api/", "args": []},
]


def function(name: str, description: str, result: str, *args: Field,
             long_running: bool = False, changes: bool = True, mcapi: McRoute | None = None,
             roles: tuple[str, ...] = ("administrator",),
             redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
             isolated: bool = False,
             registry: Registry = REGISTRY) -> Callable[[Callable[[Any], Any]], Function]:
    """Declare a function; built-ins register through this like any extension would."""

    def wrap(run: Callable[[Any], Any]) -> Function:
        return registry.add(Function(name, description, result, run, tuple(args),
                                     long_running, changes, mcapi, roles, redact, isolated))

    return wrap


def _api_error(exc: FieldError) -> ApiArgumentError:
    """A field's complaint worded as the Administration API words argument errors."""
    name = exc.field.name
    if exc.choice:
        shown = f" {exc.shown}" if exc.shown else ""
        return ApiArgumentError(f"Invalid value{shown} for API argument {name}: use "
                                f"{exc.expected}.")
    if exc.expected in ("valid JSON", "given"):
        return ApiArgumentError(f"Invalid value for API argument {name}: "
                                f"{exc.message.removeprefix(name + ' ')}.")
    return ApiArgumentError(f"Invalid value for API argument {name}: {exc.expected} is "
                            "expected.")


def parse_args(fn: Function, form: Mapping[str, str],
               native: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Typed arguments from text (form fields, name=value words) and from values already
    typed (a JSON body, a caller in this process), checked against the declaration.

    An argument that is absent is left out (a partial update tells it from null), unless it
    has a default (one the original added later: its old behaviour). An empty value of an
    optional argument means null (the original errors there; its users complain)."""
    native = native or {}
    known = {a.name.lower(): a for a in fn.args}
    given: dict[str, str] = {}
    for key, value in form.items():
        arg = known.get(key.lower())
        if arg is None:
            raise ApiArgumentError(f"Unknown API argument {key}.")
        given[arg.name] = value
    for key in native:
        if key.lower() not in known:
            raise ApiArgumentError(f"Unknown API argument {key}.")
    out: dict[str, Any] = {}
    try:
        for arg in fn.args:
            if arg.name in native:
                out[arg.name] = arg.check(native[arg.name])
            elif arg.name in given:
                out[arg.name] = arg.parse(given[arg.name])
            elif arg.default is not None:
                out[arg.name] = arg.default
            elif not arg.nullable:
                raise ApiArgumentError(f"Missing API argument {arg.name}.")
    except FieldError as exc:
        raise _api_error(exc) from None
    return out


def split_json(fn: Function, body: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The arguments of a JSON object as parse_args takes them: strings as text (parsed as a
    form field is), other JSON values as values (of the declared type, or null for a
    nullable argument)."""
    form: dict[str, str] = {}
    native: dict[str, Any] = {}
    known = {a.name.lower(): a for a in fn.args}
    for key, value in body.items():
        arg = known.get(str(key).lower())
        if arg is None:
            raise ApiArgumentError(f"Unknown API argument {key}.")
        if isinstance(value, str):
            form[arg.name] = value
        else:
            native[arg.name] = value
    return form, native
