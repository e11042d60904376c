"""The POP3 source against a real Dovecot filled with real corpus messages."""

from __future__ import annotations

import time

import pytest
from imapclient import IMAPClient

from mailkeep.sources.imap import SourceError
from mailkeep.sources.pop3 import Pop3Settings, Pop3Source
from tests.sources.dovecot import PASSWORD, Dovecot, corpus_messages, run

MESSAGES = corpus_messages()


def settings(dovecot: Dovecot, user: str, **kw: object) -> Pop3Settings:
    base: dict[str, object] = dict(
        host="127.0.0.1", port=dovecot.pop3_port, security="none", username=user,
        password=PASSWORD, timeout=10.0,
    )
    base.update(kw)
    return Pop3Settings(**base)  # type: ignore[arg-type]


def test_fetch_all_then_only_new(dovecot: Dovecot, user: str, admin: IMAPClient) -> None:
    for m in MESSAGES[:6]:
        admin.append("INBOX", m)
    source = Pop3Source(settings(dovecot, user, folder="Mail/pop"), {})
    got = run(source)
    assert [m.data for m in got] == MESSAGES[:6]  # byte for byte, dot-stuffing undone
    assert {m.folder for m in got} == {"Mail/pop"}
    assert all(m.origin.startswith(f"pop3://{user}@127.0.0.1/") for m in got)
    assert len(source.seen) == 6

    assert run(Pop3Source(settings(dovecot, user), source.seen)) == []

    admin.append("INBOX", MESSAGES[6])
    again = Pop3Source(settings(dovecot, user), source.seen)
    assert [m.data for m in run(again)] == [MESSAGES[6]]
    assert len(again.seen) == 7


def test_unconfirmed_message_is_fetched_again(
    dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    for m in MESSAGES[:3]:
        admin.append("INBOX", m)
    source = Pop3Source(settings(dovecot, user), {})
    got = run(source, confirm=False)
    source.confirm(got[0])
    source.confirm(got[2])
    again = Pop3Source(settings(dovecot, user), source.seen)
    assert [m.data for m in run(again)] == [MESSAGES[1]]


def test_apop(dovecot: Dovecot, user: str, admin: IMAPClient) -> None:
    admin.append("INBOX", MESSAGES[0])
    assert [m.data for m in run(Pop3Source(settings(dovecot, user, apop=True), {}))] == [
        MESSAGES[0]
    ]
    secret = "wrong-Apop-5512"
    with pytest.raises(SourceError) as info:
        list(Pop3Source(settings(dovecot, user, apop=True, password=secret), {}))
    assert info.value.step == "login" and info.value.message.startswith("-ERR")
    assert secret not in str(info.value)


def test_wrong_password(dovecot: Dovecot, user: str) -> None:
    secret = "wrong-Pop3-8830"
    with pytest.raises(SourceError) as info:
        list(Pop3Source(settings(dovecot, user, password=secret), {}))
    assert info.value.step == "login"
    assert "Authentication failed" in info.value.message
    assert secret not in str(info.value)


def test_delete_archived_removes_only_confirmed_old_ones(
    dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    for m in MESSAGES[:4]:
        admin.append("INBOX", m)
    source = Pop3Source(settings(dovecot, user), {})
    got = run(source, confirm=False)
    for m in got[:3]:
        source.confirm(m)  # the 4th is never confirmed
    uidl = {m.data: m.origin.rsplit("/", 1)[1] for m in got}
    long_ago = time.time() - 40 * 86400
    source.seen[uidl[MESSAGES[0]]] = long_ago
    source.seen[uidl[MESSAGES[2]]] = long_ago
    admin.append("INBOX", MESSAGES[4])  # arrived after the run

    assert source.delete_archived(30) == 2
    assert set(source.seen) == {uidl[MESSAGES[1]]}

    fresh = Pop3Source(settings(dovecot, user), {})
    assert [m.data for m in run(fresh)] == [MESSAGES[1], MESSAGES[3], MESSAGES[4]]
    assert source.delete_archived(30) == 0
    everything = Pop3Source(settings(dovecot, user, delete_after_days=0), fresh.seen)
    assert everything.delete_archived() == 3


def test_tls_implicit_and_stls(dovecot: Dovecot, user: str, admin: IMAPClient) -> None:
    admin.append("INBOX", MESSAGES[0])
    pop3s = settings(dovecot, user, port=dovecot.pop3s_port, security="implicit",
                     ca_file=dovecot.ca_file)
    assert [m.data for m in run(Pop3Source(pop3s, {}))] == [MESSAGES[0]]
    stls = settings(dovecot, user, security="starttls", ca_file=dovecot.ca_file)
    assert [m.data for m in run(Pop3Source(stls, {}))] == [MESSAGES[0]]
    with pytest.raises(SourceError) as info:
        list(Pop3Source(settings(dovecot, user, security="starttls"), {}))
    assert info.value.step == "starttls" and "certificate" in info.value.message.lower()
