"""Header parameters (Content-Type, Content-Disposition) split in time linear in their length.

The standard library's splitter (email.message._parseparam, Python 3.11) counts the quotes of
a parameter again from its start at every ";" inside its quotes, and copies the rest of the
header after each parameter: a Content-Type of 40,000 quoted semicolons took a second, one of
a megabyte would take hours. parse.py parses into ParamsMessage, which splits the same way in
one pass, and finds a multipart's boundary even where decode_params cannot read the rest.
"""

from __future__ import annotations

import re
from email import utils
from email.message import Message
from typing import TypeVar, overload

_T = TypeVar("_T")
_QUOTE_OR_SEMICOLON = re.compile(r'(?<!\\)"|;')  # a quote after a backslash does not count


def split_params(value: str) -> list[str]:
    """What email.message._parseparam returns: the value split at each ";" outside quotes, and
    in each piece the name before a "=" lower-cased and stripped, and the value stripped."""
    pieces: list[str] = []
    start, quoted = 0, False
    for m in _QUOTE_OR_SEMICOLON.finditer(value):
        if m.group() == '"':
            quoted = not quoted
        elif not quoted:
            pieces.append(value[start : m.start()])
            start = m.end()
    pieces.append(value[start:])
    return [_tidy(piece) for piece in pieces]


def _tidy(piece: str) -> str:
    name, equals, rest = piece.partition("=")
    return (name.strip().lower() + "=" + rest.strip() if equals else piece).strip()


def _pairs(value: str) -> list[tuple[str, str]]:
    """(name, value) of each piece, as Message._get_params_preserve pairs them."""
    pairs: list[tuple[str, str]] = []
    for piece in split_params(value):
        name, equals, rest = piece.partition("=")
        pairs.append((name.strip(), rest.strip()) if equals else (piece.strip(), ""))
    return pairs


class ParamsMessage(Message):
    """email.message.Message with its parameters split by split_params, and a boundary that
    odd RFC 2231 sections elsewhere in its header do not make unreadable."""

    def _get_params_preserve(self, failobj: object, header: str) -> object:
        # Message._get_params_preserve, with the splitter swapped
        value = self.get(header)
        return failobj if value is None else utils.decode_params(_pairs(str(value)))

    @overload
    def get_boundary(self, failobj: None = None) -> str | None: ...
    @overload
    def get_boundary(self, failobj: _T) -> str | _T: ...

    def get_boundary(self, failobj: object = None) -> object:
        # email.parser asks each multipart for its boundary: an exception here lost the
        # structure of the whole message. decode_params raises TypeError on a parameter
        # given both with and without section numbers (name*=a; name*0=b); then the boundary
        # is read as get_boundary reads it, from the parameters without RFC 2231 sections.
        try:
            return super().get_boundary(failobj)
        except TypeError:
            pairs = _pairs(str(self.get("content-type", "")))
            plain = pairs[:1] + [(name, value) for name, value in pairs[1:] if "*" not in name]
            for name, quoted in utils.decode_params(plain)[1:]:
                if name.lower() == "boundary" and isinstance(quoted, str):
                    return utils.collapse_rfc2231_value(utils.unquote(quoted)).rstrip()
            return failobj
