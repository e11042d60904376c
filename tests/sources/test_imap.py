"""The IMAP source against a real Dovecot filled with real corpus messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from imapclient import IMAPClient

from mailkeep.core.message import RawMessage
from mailkeep.sources.imap import FolderState, ImapSettings, ImapSource, SourceError
from tests.sources.dovecot import PASSWORD, Dovecot, corpus_messages, run

MESSAGES = corpus_messages()


def settings(dovecot: Dovecot, user: str, **kw: object) -> ImapSettings:
    base: dict[str, object] = dict(
        host="127.0.0.1", port=dovecot.imap_port, security="none", username=user,
        secret=PASSWORD, timeout=10.0,
    )
    base.update(kw)
    return ImapSettings(**base)  # type: ignore[arg-type]


def when(days_ago: float) -> datetime:
    return (datetime.now(UTC) - timedelta(days=days_ago)).replace(microsecond=0)


# Wire name (delimiter '.') -> the folder the source must report.
FOLDERS = {"INBOX": "INBOX", "Entwürfe": "Entwürfe", "日本語": "日本語",
           "Lists.linux": "Lists/linux"}
FLAG_SETS = [
    ((b"\\Seen",), {"seen"}),
    ((b"\\Seen", b"\\Answered", b"\\Flagged"), {"seen", "answered", "flagged"}),
    ((), set()),
    ((b"\\Draft", b"$Forwarded", b"custom"), {"draft", "forwarded"}),
]


def test_archives_every_folder_byte_exact_then_only_new(
    dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    expected: dict[str, list[tuple[bytes, set[str], float]]] = {}
    i = 0
    for wire, name in FOLDERS.items():
        if wire != "INBOX":
            admin.create_folder(wire)  # IMAPClient sends modified UTF-7
        for _ in range(3):
            raw_flags, flags = FLAG_SETS[i % len(FLAG_SETS)]
            date = datetime(2019, 3, 1 + i, 12, 30, 15, tzinfo=timezone(timedelta(hours=2)))
            admin.append(wire, MESSAGES[i], flags=raw_flags, msg_time=date)
            expected.setdefault(name, []).append((MESSAGES[i], flags, date.timestamp()))
            i += 1

    source = ImapSource(settings(dovecot, user), {})
    got = run(source)
    by_folder: dict[str, list[tuple[bytes, set[str], float | None]]] = {}
    for m in got:
        by_folder.setdefault(m.folder, []).append((m.data or b"", set(m.flags), m.internal_date))
    assert by_folder == expected  # order too: oldest UID first
    assert got[0].origin.startswith(f"imap://{user}@127.0.0.1/INBOX;UIDVALIDITY=")
    assert got[0].origin.endswith("/;UID=1")
    assert set(source.state) == set(FOLDERS.values())
    assert all(s.last_uid == 3 for s in source.state.values())

    # Nothing new: nothing yielded, and the state survives a round trip.
    saved = {k: FolderState(v.uidvalidity, v.last_uid) for k, v in source.state.items()}
    assert run(ImapSource(settings(dovecot, user), saved)) == []

    admin.append("日本語", MESSAGES[-1], flags=[b"\\Seen"])
    admin.append("INBOX", MESSAGES[-2])
    again = ImapSource(settings(dovecot, user), saved)
    new = run(again)
    assert [(m.folder, m.data) for m in new] == [("INBOX", MESSAGES[-2]), ("日本語", MESSAGES[-1])]
    assert new[1].flags == {"seen"}
    assert again.state["日本語"].last_uid == 4
    # Reading with BODY.PEEK must not have marked anything seen.
    admin.select_folder("INBOX")
    assert b"\\Seen" not in admin.get_flags([4])[4]


def test_folders_and_exclude(dovecot: Dovecot, user: str, admin: IMAPClient) -> None:
    for n, wire in enumerate(["Archiv", "Archiv.2019", "Archiv.2020", "Entwürfe", "Spam"]):
        admin.create_folder(wire)
        admin.append(wire, MESSAGES[n])
    admin.append("INBOX", MESSAGES[5])

    def folders(**kw: object) -> list[str]:
        return sorted(m.folder for m in run(ImapSource(settings(dovecot, user, **kw), {})))

    assert folders() == ["Archiv", "Archiv/2019", "Archiv/2020", "Entwürfe", "INBOX", "Spam"]
    assert folders(folders=("Entwürfe", "Archiv/2020")) == ["Archiv/2020", "Entwürfe"]
    assert folders(exclude=("Archiv", "Spam")) == ["Entwürfe", "INBOX"]
    assert folders(exclude=("Archiv/2019", "Entwürfe")) == [
        "Archiv", "Archiv/2020", "INBOX", "Spam"
    ]


def test_unconfirmed_message_is_fetched_again(
    dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    for m in MESSAGES[:4]:
        admin.append("INBOX", m)
    source = ImapSource(settings(dovecot, user), {})
    got = run(source, confirm=False)
    assert len(got) == 4
    source.confirm(got[0])
    source.confirm(got[2])  # UID 2 is not confirmed: the state may not pass it
    source.confirm(got[3])
    assert source.state["INBOX"].last_uid == 1

    second = ImapSource(settings(dovecot, user), source.state)
    got2 = run(second)
    assert [m.data for m in got2] == MESSAGES[1:4]
    assert second.state["INBOX"].last_uid == 4
    assert run(ImapSource(settings(dovecot, user), second.state)) == []


def test_uidvalidity_change_fetches_folder_from_start(
    dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    admin.create_folder("Entwürfe")
    admin.append("Entwürfe", MESSAGES[0])
    admin.append("INBOX", MESSAGES[1])
    source = ImapSource(settings(dovecot, user), {})
    assert len(run(source)) == 2
    old = source.state["Entwürfe"].uidvalidity

    admin.delete_folder("Entwürfe")
    admin.create_folder("Entwürfe")
    admin.append("Entwürfe", MESSAGES[0])
    admin.append("Entwürfe", MESSAGES[2])
    again = ImapSource(settings(dovecot, user), source.state)
    got = run(again)
    assert [(m.folder, m.data) for m in got] == [
        ("Entwürfe", MESSAGES[0]), ("Entwürfe", MESSAGES[2])
    ]
    assert again.state["Entwürfe"].uidvalidity != old
    assert again.state["Entwürfe"].last_uid == 2
    assert f";UIDVALIDITY={again.state['Entwürfe'].uidvalidity}/" in got[0].origin


def test_delete_archived_removes_only_confirmed_old_messages(
    dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    admin.create_folder("Alt")
    admin.append("INBOX", MESSAGES[0], msg_time=when(400))  # old, confirmed: goes
    admin.append("INBOX", MESSAGES[1], msg_time=when(2))  # recent, confirmed: stays
    admin.append("INBOX", MESSAGES[2], msg_time=when(400))  # old, never confirmed: stays
    admin.append("Alt", MESSAGES[3], msg_time=when(31))  # old, confirmed: goes
    # old, not confirmed, flagged \Deleted by the user: must survive our expunge
    admin.append("Alt", MESSAGES[4], flags=[b"\\Deleted"], msg_time=when(500))
    source = ImapSource(settings(dovecot, user), {})
    for item in source:
        assert isinstance(item, RawMessage)
        if item.data not in (MESSAGES[2], MESSAGES[4]):
            source.confirm(item)
    admin.append("INBOX", MESSAGES[5], msg_time=when(600))  # old, arrived after the run: stays

    assert source.delete_archived(30) == 2

    admin.select_folder("INBOX")
    left = admin.fetch(admin.search("ALL"), [b"BODY.PEEK[]"])
    assert sorted(v[b"BODY[]"] for v in left.values()) == sorted(
        [MESSAGES[1], MESSAGES[2], MESSAGES[5]]
    )
    admin.select_folder("Alt")
    left = admin.fetch(admin.search("ALL"), [b"BODY.PEEK[]"])
    assert [v[b"BODY[]"] for v in left.values()] == [MESSAGES[4]]
    assert source.delete_archived(30) == 0
    # The state-based rule: a later run's source deletes by the saved state alone.
    later = ImapSource(settings(dovecot, user, delete_after_days=1), source.state)
    assert later.delete_archived() == 1  # the recent one, now that it is over a day old


def test_wrong_password_reports_the_server_reply(dovecot: Dovecot, user: str) -> None:
    secret = "wrong-Secr3t-4471"
    source = ImapSource(settings(dovecot, user, secret=secret), {})
    with pytest.raises(SourceError) as info:
        list(source)
    assert info.value.step == "login"
    assert "AUTHENTICATIONFAILED" in info.value.message or "failed" in info.value.message
    assert secret not in str(info.value) and secret not in repr(info.value.args)


def test_tls_implicit_and_starttls(dovecot: Dovecot, user: str, admin: IMAPClient) -> None:
    admin.append("INBOX", MESSAGES[0])
    imaps = settings(dovecot, user, port=dovecot.imaps_port, security="implicit",
                     ca_file=dovecot.ca_file, auth="plain")
    assert [m.data for m in run(ImapSource(imaps, {}))] == [MESSAGES[0]]
    starttls = settings(dovecot, user, security="starttls", ca_file=dovecot.ca_file)
    assert [m.data for m in run(ImapSource(starttls, {}))] == [MESSAGES[0]]

    # The test CA is not trusted by default: the certificate check must refuse it.
    untrusted = settings(dovecot, user, port=dovecot.imaps_port, security="implicit")
    with pytest.raises(SourceError) as info:
        list(ImapSource(untrusted, {}))
    assert info.value.step == "connect" and "certificate" in info.value.message.lower()
    with pytest.raises(SourceError) as info:
        list(ImapSource(settings(dovecot, user, security="starttls"), {}))
    assert info.value.step == "starttls"
    unverified = settings(
        dovecot, user, port=dovecot.imaps_port, security="implicit", verify=False
    )
    assert len(run(ImapSource(unverified, {}))) == 1
