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

from ..core.errors import MailkeepError

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
             long_running: bool = False, changes: bool = True,
             registry: Registry = REGISTRY) -> Callable[[Callable[[Any], Any]], Function]:
    """Declare a function; built-ins register through this like any extension would."""

    def wrap(run: Callable[[Any], Any]) -> Function:
        return registry.add(Function(name, description, result, run, tuple(args), role,
                                     long_running, changes))

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
    if arg.is_list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if arg.values and raw not in arg.values:
        shown = "" if arg.secret else f" '{raw}'"
        raise ApiArgumentError(f"Invalid value{shown} for API argument {arg.name}: use one of "
                               f"{', '.join(arg.values)}.")
    return raw


def parse_args(fn: Function, form: Mapping[str, str]) -> dict[str, Any]:
    """Typed arguments from form fields, checked against the declaration."""
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
        if raw is None or (arg.nullable and raw.strip() == ""):
            if not arg.nullable:
                raise ApiArgumentError(f"Missing API argument {arg.name}.")
            out[arg.name] = None
            continue
        out[arg.name] = _convert(arg, raw)
    return out
