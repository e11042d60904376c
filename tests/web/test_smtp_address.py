"""The journal receiver reads the plain `<local@domain>` of MAIL FROM and RCPT TO itself (a
regular expression, where aiosmtpd's header parser took 16 us each): it must read every such
argument exactly as aiosmtpd does, and leave every other argument to aiosmtpd."""

from __future__ import annotations

from types import SimpleNamespace

from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from mailkeep.receive.smtp import plain_address

PIECES = ["<", ">", "@", ".", "a", "B", "9", "-", "_", "'", "+", "=", "!", "~", "`", "{",
          "(", ")", '"', "\\", " ", "\t", "[", "]", ":", ";", ",", "é", "SIZE=12", "x@y"]


def aiosmtpd_reading(arg: str) -> tuple[str | None, str | None]:
    return SMTP._getaddr(SimpleNamespace(local_part_limit=0), arg)  # type: ignore[arg-type]


@settings(max_examples=4000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14).map("".join))
def test_a_plain_address_is_read_as_aiosmtpd_reads_it(arg: str) -> None:
    ours = plain_address(arg)
    if ours is not None:
        assert ours == aiosmtpd_reading(arg), arg


@settings(max_examples=500, deadline=None)
@given(st.from_regex(r"\A<[a-z0-9.+-]{1,8}@[a-z0-9.-]{1,8}>[ \t]*(SIZE=[0-9]{1,4})?\Z"))
def test_the_forms_mtas_send_are_read_here(arg: str) -> None:
    ours = plain_address(arg)
    if ours is not None:
        assert ours == aiosmtpd_reading(arg), arg


def test_the_common_forms_take_the_quick_way_and_the_others_aiosmtpd_s() -> None:
    assert plain_address("<ralf@linux-mips.org> SIZE=2345") == ("ralf@linux-mips.org",
                                                                "SIZE=2345")
    assert plain_address("<a.b+c@mail.example.org>") == ("a.b+c@mail.example.org", "")
    for other in ("<>", "a@b", " <a@b>", '<"a b"@c>', "<a@[192.0.2.1]>", "<a@b> (comment)",
                  "<@relay:a@b>", "<a..b@c>", "<a@b.>", "<é@b>"):
        assert plain_address(other) is None, other
