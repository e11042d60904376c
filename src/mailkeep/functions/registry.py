"""The function catalog: every administrative operation declared once.

A declaration names the function, its typed arguments (as the Administration API's get-metadata
lists them), what it returns, the role it needs and whether it may run long. The API's invoke
endpoint, get-metadata, the CLI's `call` command and the reference in docs/ are projections of
these declarations; none of them declares an operation again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mailkeep.core.errors import MailkeepError

ArgType = Literal["string", "number", "bool", "json"]


class ApiArgumentError(MailkeepError):
    """An argument is missing, unknown or malformed; the call changes nothing."""

    code = "invalid_argument"


@dataclass(frozen=True)
class Arg:
    name: str
    type: ArgType
    nullable: bool = False
    description: str = ""
    values: tuple[str, ...] = ()  # the allowed values of a string argument, if a closed set
    is_list: bool = False  # a comma-separated list of strings
    secret: bool = False  # never echoed in errors, logs or the audit log
    secret_keys: tuple[str, ...] = ()  # of a json object argument: keys shown only as "***"

    def shown(self, value: Any) -> Any:
        """The value as the audit log may keep it."""
        if self.secret_keys and isinstance(value, dict):
            return {k: "***" if k in self.secret_keys and v else v for k, v in value.items()}
        return value


ROLES = ("administrator", "developer", "operator")
ALL_ROLES = ROLES


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
    args: tuple[Arg, ...] = ()
    role: str = "administrator"
    long_running: bool = False
    changes: bool = True  # writes to the archive or settings (audited)
    mcapi: McRoute | None = None
    roles: tuple[str, ...] = ("administrator",)  # management-console roles that may call it

    def audit_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments as the audit log may keep them: secrets left out or masked."""
        return {a.name: a.shown(args.get(a.name)) for a in self.args if not a.secret}

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "args": [{"name": a.name, "type": a.type, "nullable": a.nullable} for a in self.args],
            "description": self.description,
            "result": self.result,
            "longRunning": self.long_running,
            "role": self.role,
        }


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


def function(name: str, description: str, result: str, *args: Arg, role: str = "administrator",
             long_running: bool = False, changes: bool = True, mcapi: McRoute | None = None,
             roles: tuple[str, ...] = ("administrator",),
             registry: Registry = REGISTRY) -> Callable[[Callable[[Any], Any]], Function]:
    """Declare a function; built-ins register through this like any extension would."""

    def wrap(run: Callable[[Any], Any]) -> Function:
        return registry.add(Function(name, description, result, run, tuple(args), role,
                                     long_running, changes, mcapi, roles))

    return wrap


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _convert(arg: Arg, raw: str) -> Any:
    text = raw.strip()
    if arg.type == "number":
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                raise ApiArgumentError(
                    f"Invalid value for API argument {arg.name}: a number is expected.") from None
    if arg.type == "bool":
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ApiArgumentError(
            f"Invalid value for API argument {arg.name}: true or false is expected.")
    if arg.type == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ApiArgumentError(
                f"Invalid value for API argument {arg.name}: not valid JSON ({exc.msg}).") from None
        except (ValueError, RecursionError):  # a number of thousands of digits, deep nesting
            raise ApiArgumentError(
                f"Invalid value for API argument {arg.name}: JSON too large or too deep."
            ) from None
    if arg.is_list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if arg.values and raw not in arg.values:
        shown = "" if arg.secret else f" '{raw}'"
        raise ApiArgumentError(f"Invalid value{shown} for API argument {arg.name}: use one of "
                               f"{', '.join(arg.values)}.")
    return raw


def parse_args(fn: Function, form: Mapping[str, str],
               native: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Typed arguments from form fields (and values already typed, from a JSON body),
    checked against the declaration."""
    native = native or {}
    known = {a.name: a for a in fn.args}
    lower = {a.name.lower(): a for a in fn.args}
    given: dict[str, str] = {}
    for key, value in form.items():
        arg = known.get(key) or lower.get(key.lower())
        if arg is None:
            raise ApiArgumentError(f"Unknown API argument {key}.")
        given[arg.name] = value
    out: dict[str, Any] = {}
    for arg in fn.args:
        raw = given.get(arg.name)
        # An empty value of an optional argument means "not given" (the original errors there;
        # its users complain). A required one must be given.
        if arg.name in native:
            out[arg.name] = native[arg.name]
            continue
        if raw is None:  # absent: left out, so that a partial update can tell it from null
            if not arg.nullable:
                raise ApiArgumentError(f"Missing API argument {arg.name}.")
            continue
        if arg.nullable and raw.strip() == "":
            out[arg.name] = None
            continue
        out[arg.name] = _convert(arg, raw)
    return out


def parse_json_args(fn: Function, body: Mapping[str, Any]) -> dict[str, Any]:
    """Typed arguments from a JSON object: JSON values of the declared type as they are,
    strings converted as form fields are, null for a nullable argument."""
    form: dict[str, str] = {}
    native: dict[str, Any] = {}
    known = {a.name.lower(): a for a in fn.args}
    for key, value in body.items():
        arg = known.get(str(key).lower())
        if arg is None:
            raise ApiArgumentError(f"Unknown API argument {key}.")
        if value is None:
            if not arg.nullable:
                raise ApiArgumentError(f"API argument {arg.name} must not be null.")
            native[arg.name] = None
        elif isinstance(value, str):
            form[arg.name] = value
        elif arg.type == "json" or (arg.type == "bool" and isinstance(value, bool)) or (
                arg.type == "number" and isinstance(value, int | float)
                and not isinstance(value, bool)):
            native[arg.name] = value
        elif arg.is_list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            native[arg.name] = [v.strip() for v in value if v.strip()]
        else:
            expected = {"number": "a number", "bool": "true or false"}.get(arg.type, "a string")
            raise ApiArgumentError(f"Invalid value for API argument {arg.name}: {expected} is "
                                   "expected.")
    return parse_args(fn, form, native)
