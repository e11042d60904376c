"""One declarative field type for every schema of mailkeep: the arguments of catalog functions,
the server's settings, the notification mail's configuration and archiving profiles.

A Field says what a value may be (its kind, whether it may be null, its choices, range, length
and format) and knows how to take it from text as a person or a form types it (`parse`) or as
a JSON value (`check`). A wrong value raises FieldError, which says what was expected; each
schema words the message for its audience (an API argument, a setting, a profile property).
There is one way to read a boolean: `parse_bool`.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Any, Literal

from mailkeep.core.errors import InvalidArgument

Kind = Literal["string", "int", "number", "bool", "json", "list"]
Format = Literal["", "line", "host", "address", "addresses", "absolute-path", "networks"]

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})
# The Administration API's four types, as get-metadata lists them.
API_TYPES: dict[str, str] = {"string": "string", "list": "string", "int": "number",
                             "number": "number", "bool": "bool", "json": "json"}
HOST_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)"
                     r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$|^\[?[0-9A-Fa-f:.]+\]?$")
ADDRESS_RE = re.compile(r"^[^@\s<>,;\"\x00-\x1f\x7f]+@[^@\s<>,;\"\x00-\x1f\x7f]+$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A client's address as an address (None: not one); an IPv4 address mapped into IPv6
    counts as itself."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def within(host: str, networks: list[Network]) -> bool:
    """Whether a client's address is in one of `networks`."""
    address = client_address(host)
    return address is not None and any(address in n for n in networks)


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    """Whether a client's address (or the name localhost) is this machine; an IPv4 address
    mapped into IPv6 counts as itself. Remembered: parsing an address costs a request as much
    as checking its cached password."""
    if host.lower() == "localhost":
        return True
    address = client_address(host)
    return address is not None and address.is_loopback


def parse_bool(text: str) -> bool | None:
    """True or False from how people write them (true/false, 1/0, yes/no, on/off, any case);
    None when the text is none of these."""
    low = text.strip().lower()
    return True if low in TRUE else False if low in FALSE else None



class _NotFinite(ValueError):
    """NaN, Infinity or a number too large for a float: Python's json takes them, JSON has
    none, and a browser's JSON.parse fails on an answer that carries them back."""


def _no_constant(name: str) -> float:
    raise _NotFinite(name)


def _finite(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise _NotFinite(text)
    return value

class FieldError(InvalidArgument):
    """A value that the field does not take. `expected` says what it takes ("a number", "one
    of a, b"); `shown` is the offending value as it may be repeated (empty for secrets)."""

    def __init__(self, field: Field, expected: str, value: Any = None, *,
                 choice: bool = False, problem: str | None = None) -> None:
        self.field = field
        self.expected = expected
        self.choice = choice
        self.shown = "" if field.secret or value is None else _shown(value)
        text = problem or f"must be {expected}"
        super().__init__(f"{field.name} {text}" + (f", not {self.shown}" if self.shown else ""))


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text if len(text) <= 60 else text[:57] + "..."
    return repr(text) if isinstance(value, str) else text


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind = "string"
    nullable: bool = False  # null (or, from text, an empty string) is a value
    description: str = ""
    default: Any = None
    required: bool = False  # must be given (schemas with defaults leave this False)
    choices: tuple[str, ...] = ()  # a closed set, matched without regard to case
    low: float | None = None
    high: float | None = None
    max_length: int | None = None
    format: Format = ""
    secret: bool = False  # never echoed in errors, logs or the audit log
    secret_keys: tuple[str, ...] = ()  # of a json object: keys shown only as "***"
    mask: Callable[[Any], Any] | None = None  # what of a value the audit log may keep

    @property
    def api_type(self) -> str:
        return API_TYPES[self.kind]

    # -- from text ----------------------------------------------------------------------------
    def parse(self, text: str) -> Any:
        """The value of text as typed on a command line or sent in a form field."""
        raw = text.strip()
        if self.nullable and raw == "":
            return None
        if self.kind in ("int", "number"):
            return self._number(self._to_number(raw, text))
        if self.kind == "bool":
            value = parse_bool(raw)
            if value is None:
                raise FieldError(self, "true or false", text)
            return value
        if self.kind == "json":
            try:
                return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
            except _NotFinite:
                raise FieldError(self, "valid JSON", problem="holds NaN or an infinite number "
                                 "(not JSON)") from None
            except json.JSONDecodeError as exc:
                raise FieldError(self, "valid JSON", problem=f"is not valid JSON ({exc.msg})"
                                 ) from None
            except (ValueError, RecursionError):  # a number of thousands of digits, deep nesting
                raise FieldError(self, "valid JSON", problem="is JSON too large or too deep"
                                 ) from None
        if self.kind == "list":
            return self._items([item.strip() for item in text.split(",") if item.strip()])
        return self._string(text)

    def _to_number(self, raw: str, text: str) -> int | float:
        whole = self.kind == "int"
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if whole and math.isfinite(number) and number.is_integer():
            return int(number)
        if whole or not math.isfinite(number):  # "abc", "inf", "1e309", "nan"
            raise FieldError(self, "a whole number" if whole else "a number", text)
        return number

    # -- from JSON ----------------------------------------------------------------------------
    def check(self, value: Any) -> Any:
        """The value of a JSON value (strictly: a string is not a number or a boolean)."""
        if value is None:
            if self.nullable:
                return None
            raise FieldError(self, "given", problem="must not be null")
        if self.kind in ("int", "number"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FieldError(self, "a whole number" if self.kind == "int" else "a number",
                                 value)
            if isinstance(value, float) and (not math.isfinite(value) or (
                    self.kind == "int" and not value.is_integer())):
                raise FieldError(self, "a whole number" if self.kind == "int" else "a number",
                                 value)
            return self._number(int(value) if self.kind == "int" else value)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise FieldError(self, "true or false", value)
            return value
        if self.kind == "json":
            return value
        if self.kind == "list":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise FieldError(self, "a list of strings", value)
            return self._items([v.strip() for v in value if v.strip()])
        if not isinstance(value, str):
            raise FieldError(self, "a string", value)
        return self._string(value)

    def take(self, value: Any) -> Any:
        """A value that may come as text (a form field) or as JSON: text is parsed, JSON
        checked."""
        return self.parse(value) if isinstance(value, str) and self.kind != "string" \
            else self.check(value)

    # -- shared checks ------------------------------------------------------------------------
    def _number(self, number: int | float) -> int | float:
        if (self.low is not None and number < self.low) or (
                self.high is not None and number > self.high):
            raise FieldError(self, f"between {self.low} and {self.high}", number)
        return number

    def _choice(self, value: str) -> str:
        by_lower = {c.lower(): c for c in self.choices}
        found = by_lower.get(value.strip().lower())
        if found is None:
            raise FieldError(self, f"one of {', '.join(self.choices)}", value, choice=True)
        return found

    def _items(self, items: list[str]) -> list[str]:
        return [self._choice(i) for i in items] if self.choices else items

    def _string(self, value: str) -> Any:
        if self.choices:
            return self._choice(value)
        if self.max_length is not None and len(value) > self.max_length:
            raise FieldError(self, f"at most {self.max_length} characters long")
        if self.format:
            return _FORMATS[self.format](self, value)
        return value

    def shown(self, value: Any) -> Any:
        """The value as the audit log may keep it."""
        if self.mask is not None and value is not None:
            return self.mask(value)
        if self.secret:
            return "***" if value else value
        if self.secret_keys and isinstance(value, dict):
            return {k: "***" if k in self.secret_keys and v else v for k, v in value.items()}
        return value


# -- formats: what a string field's text must look like -----------------------------------------
def _line(field: Field, value: str) -> str:
    if CONTROL_RE.search(value):
        raise FieldError(field, "", problem="must not contain control characters or line breaks")
    return value


def _host(field: Field, value: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    if not HOST_RE.match(text):
        raise FieldError(field, "a host name or address", value)
    return text


def _addresses(field: Field, value: str) -> str | None:
    if any(c in value for c in "\r\n\x00"):
        raise FieldError(field, "", problem="must not contain line breaks")
    if not value.strip():
        return None
    found = [addr for _n, addr in getaddresses([value])]
    if not found or any(not ADDRESS_RE.match(a) for a in found):
        raise FieldError(field, "mail addresses (name@example.org)", value)
    return ", ".join(found)


def _address(field: Field, value: str) -> str | None:
    text = _addresses(field, value)
    if text is not None and "," in text:
        raise FieldError(field, "one mail address (name@example.org)", value)
    return text


def _absolute_path(field: Field, value: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    if CONTROL_RE.search(text):
        raise FieldError(field, "a path without control characters")
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~name of a user this machine does not have
        raise FieldError(field, "an absolute path", value) from None
    if not path.is_absolute():
        raise FieldError(field, "an absolute path", value)
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in path.parts):
        raise FieldError(field, "a path whose names are at most 255 bytes long")
    return str(path)


def _networks(field: Field, value: str) -> str:
    items = [n.strip() for n in value.split(",") if n.strip()]
    networks = []
    for item in items:
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise FieldError(field, "networks such as 192.0.2.0/24 or 2001:db8::/32",
                             problem=f"holds {item!r}, which is not a network such as "
                             "192.0.2.0/24 or 2001:db8::/32") from None
    return ",".join(networks)


_FORMATS = {"line": _line, "host": _host, "address": _address, "addresses": _addresses,
            "absolute-path": _absolute_path, "networks": _networks}
