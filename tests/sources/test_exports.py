"""The exports people have, each built here in that format's exact layout and imported with
`mailkeep import`: a Google Takeout mbox (labels as folders, stored once), a Thunderbird mail
directory (.msf indexes, .sbd subfolders, expunged messages, its other files), Apple Mail
(.mbox bundles, .emlx files with their flags)."""

from __future__ import annotations

import json
import plistlib
from pathlib import Path
from typing import Any

from mailkeep.core.archive import Archive
from tests.helpers import mk, mk_ok


def msg(subject: str, extra: str = "", body: str = "hello") -> bytes:
    return (f"From: sender@example.org\r\nTo: me@example.org\r\nSubject: {subject}\r\n"
            f"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{subject}@example.org>\r\n"
            f"{extra}\r\n{body}\r\n").encode()


def mbox(*messages: bytes) -> bytes:
    return b"".join(b"From MAILER-DAEMON Tue Jan  2 10:00:00 2024\r\n" + m + b"\r\n"
                    for m in messages)


def folders(data: Path) -> dict[str, int]:
    got = json.loads(mk_ok(data, "folders", "--json").stdout)
    return {(f"{f['user']}/{f['folder']}" if f["folder"] else f["user"]): f["messages"]
            for f in got if f["messages"]}


def messages(data: Path, folder: str) -> dict[str, dict[str, Any]]:
    got = json.loads(mk_ok(data, "call", "GetMessages", f"folder={folder}").stdout)
    return {m["subject"]: m for m in got}


def stored(data: Path) -> tuple[int, int]:
    """(messages filed, distinct messages stored)."""
    with Archive(data) as archive:
        rec, store = archive.current_store()
        entries, blobs, _folders = store.catalog.counts()
    return entries, blobs


def test_a_google_takeout_mbox_files_each_message_under_its_labels(tmp_path: Path) -> None:
    takeout = tmp_path / "Takeout" / "Mail"
    takeout.mkdir(parents=True)
    inbox = msg("two labels", "X-GM-THRID: 1786712345678901234\r\n"
                "X-Gmail-Labels: Inbox,Important,Opened\r\n")
    (takeout / "All mail Including Spam and Trash.mbox").write_bytes(mbox(
        inbox,
        msg("sent starred", "X-GM-THRID: 1786712345678901235\r\n"
            "X-Gmail-Labels: Sent,Opened,Starred\r\n"),
        msg("nested unicode", "X-GM-THRID: 1786712345678901236\r\n"
            "X-Gmail-Labels: \"Work/Projects, 2024\",\r\n =?UTF-8?Q?K=C3=B6ln?=,Unread\r\n"),
        msg("archived", "X-GM-THRID: 1786712345678901237\r\nX-Gmail-Labels: Opened\r\n")))
    data = tmp_path / "data"
    mk_ok(data, "import", str(tmp_path / "Takeout"))
    assert folders(data) == {
        "admin/Mail/Inbox": 1, "admin/Mail/Important": 1, "admin/Mail/Sent": 1,
        "admin/Mail/Starred": 1, "admin/Mail/Work/Projects, 2024": 1, "admin/Mail/Köln": 1,
        "admin/Mail/All Mail": 1}
    assert stored(data) == (7, 4)  # filed seven times, stored once each
    assert "seen" in messages(data, "admin/Mail/Inbox")["two labels"]["flags"]
    sent = messages(data, "admin/Mail/Sent")["sent starred"]
    assert {"seen", "flagged"} <= set(sent["flags"])
    assert "seen" not in messages(data, "admin/Mail/Köln")["nested unicode"]["flags"]
    # the thread id stays in the message, byte for byte as it came
    out = tmp_path / "out"
    mk_ok(data, "export", "--to", str(out), "--user", "admin", "--folder", "Mail/Inbox")
    [eml] = list(out.rglob("*.eml"))
    assert eml.read_bytes() == inbox
    # imported again: nothing more is stored or filed
    mk_ok(data, "import", str(tmp_path / "Takeout"))
    assert stored(data) == (7, 4)


def test_a_thunderbird_mail_directory_keeps_its_tree_and_skips_what_is_not_mail(
        tmp_path: Path) -> None:
    local = tmp_path / "Local Folders"
    (local / "Inbox.sbd").mkdir(parents=True)
    (local / "Inbox").write_bytes(mbox(
        msg("read one", "X-Mozilla-Status: 0001\r\nX-Mozilla-Status2: 00000000\r\n"),
        msg("replied and marked", "X-Mozilla-Status: 0007\r\n"),
        msg("deleted not compacted", "X-Mozilla-Status: 0009\r\n"),
        msg("new", "X-Mozilla-Status: 0000\r\n")))
    (local / "Inbox.msf").write_bytes(b"// <!-- <mdb:mork:z v=\"1.4\"/> -->\n< <(a=c)> >\n")
    (local / "Inbox.sbd" / "Receipts").write_bytes(mbox(msg("receipt",
                                                            "X-Mozilla-Status: 0001\r\n")))
    (local / "Inbox.sbd" / "Receipts.msf").write_bytes(b"// <!-- <mdb:mork:z v=\"1.4\"/> -->\n")
    (local / "Trash").write_bytes(b"")
    (local / "Trash.msf").write_bytes(b"// <!-- <mdb:mork:z v=\"1.4\"/> -->\n")
    (local / "msgFilterRules.dat").write_bytes(b'version="9"\nlogging="no"\n')
    (local / "popstate.dat").write_bytes(b"# POP3 State File\n")
    data = tmp_path / "data"
    result = mk_ok(data, "import", "--jsonl", str(local))
    assert folders(data) == {"admin/Inbox": 3, "admin/Inbox/Receipts": 1}
    inbox = messages(data, "admin/Inbox")
    assert set(inbox) == {"read one", "replied and marked", "new"}
    assert inbox["read one"]["flags"] == ["seen"]
    assert set(inbox["replied and marked"]["flags"]) == {"seen", "answered", "flagged"}
    assert inbox["new"]["flags"] == []
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary["failed"] == 0 and summary["skipped"] == 3  # expunged, two settings files


def emlx(message: bytes, flags: int) -> bytes:
    plist = plistlib.dumps({"flags": flags, "date-received": 1704189600})
    return f"{len(message)}\n".encode() + message + plist


def test_apple_mail_bundles_and_emlx_files(tmp_path: Path) -> None:
    export = tmp_path / "Apple"
    bundle = export / "Archive.mbox"
    (bundle / "Clients.mbox" / "Messages").mkdir(parents=True)
    (bundle / "mbox").write_bytes(mbox(msg("from the bundle")))
    (bundle / "table_of_contents").write_bytes(b"\x00\x01binary index")
    (bundle / "Info.plist").write_bytes(plistlib.dumps({"name": "Archive"}))
    flagged = msg("flagged and read")
    (bundle / "Clients.mbox" / "Messages" / "17.emlx").write_bytes(emlx(flagged, 1 | 16))
    (bundle / "Clients.mbox" / "Messages" / "18.partial.emlx").write_bytes(
        emlx(msg("answered, attachments apart"), 4))
    (export / "loose.emlx").write_bytes(emlx(msg("loose"), 0))
    (export / "cut.emlx").write_bytes(b"999\nFrom: x\r\n")
    data = tmp_path / "data"
    result = mk(data, "import", "--jsonl", str(export))
    assert result.exit_code == 1  # one file could not be read: said in the exit code
    assert folders(data) == {"admin/Archive": 1, "admin/Archive/Clients": 2, "admin": 1}
    clients = messages(data, "admin/Archive/Clients")
    assert set(clients["flagged and read"]["flags"]) == {"seen", "flagged"}
    assert clients["answered, attachments apart"]["flags"] == ["answered"]
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary["failed"] == 1  # the emlx cut short, named
    assert any("cut short" in line for line in result.stdout.splitlines())
    # the message's bytes are exactly those the emlx holds
    out = tmp_path / "out"
    mk_ok(data, "export", "--to", str(out), "--user", "admin", "--folder", "Archive/Clients")
    assert flagged in {p.read_bytes() for p in out.rglob("*.eml")}


def test_what_an_attack_on_the_export_readers_tried(tmp_path: Path) -> None:
    """A damaged property list, a message saved beside a Thunderbird folder, a bundle linked
    from outside, labels written in raw UTF-8, labels that look like paths or differ in case
    only: each message archived once, where it belongs, and nothing read from outside."""
    root = tmp_path / "in"
    (root / "TB").mkdir(parents=True)
    (root / "TB" / "Inbox").write_bytes(mbox(msg("tb inbox")))
    (root / "TB" / "Inbox.msf").write_bytes(b"")
    (root / "TB" / "saved.eml").write_bytes(msg("saved beside"))
    bundle = root / "Mac.mbox" / "Messages"
    bundle.mkdir(parents=True)
    (bundle / "1.emlx").write_bytes(emlx(msg("bad plist"), 1)[:-20] + b"<?xml garbage <<")
    outside = tmp_path / "outside" / "secret.mbox"
    (outside / "Messages").mkdir(parents=True)
    (outside / "Messages" / "9.emlx").write_bytes(emlx(msg("outside secret"), 0))
    (root / "Mac.mbox" / "evil.mbox").symlink_to(outside)
    (root / "takeout.mbox").write_bytes(mbox(msg(
        "labels", "X-Gmail-Labels: Café,../../etc,INBOX,Inbox,a/./b\r\n")))
    data = tmp_path / "data"
    mk_ok(data, "import", str(root))
    got = folders(data)
    assert got == {"admin/TB/Inbox": 1, "admin/TB": 1, "admin/Mac": 1, "admin/Café": 1,
                   "admin/__/__/etc": 1, "admin/INBOX": 1, "admin/a/_/b": 1}, got
    assert "outside secret" not in json.dumps(
        json.loads(mk_ok(data, "call", "SearchArchive", "query=secret").stdout))
