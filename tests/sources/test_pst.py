"""Outlook PST files, written here by tests/pstfile.py (real PSTs: pypff and libpst both read
them, see test_pstfile.py), imported with `mailkeep import` and by a `pst` archiving profile:
the folder tree with Unicode names, each item built into the message Outlook showed
(transport headers kept, bodies, attachments byte for byte, embedded messages, flags), what is
not mail skipped, the same PST twice stored once, a large PST in constant memory, a damaged one
archived as far as it can be read."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from tests.helpers import clean_env, mk, mk_ok
from tests.pstfile import (
    MAPI_BCC,
    MAPI_CC,
    MAPI_TO,
    PR_ADDRTYPE,
    PR_ATTACH_CONTENT_ID,
    PR_ATTACH_LONG_FILENAME,
    PR_ATTACH_MIME_TAG,
    PR_BODY,
    PR_DISPLAY_NAME,
    PR_EMAIL_ADDRESS,
    PR_HTML,
    PR_INTERNET_MESSAGE_ID,
    PR_MESSAGE_CLASS,
    PR_MESSAGE_DELIVERY_TIME,
    PR_MESSAGE_FLAGS,
    PR_RECIPIENT_TYPE,
    PR_SENDER_EMAIL_ADDRESS,
    PR_SENDER_NAME,
    PR_SUBJECT,
    PR_TRANSPORT_MESSAGE_HEADERS,
    Attachment,
    Folder,
    Message,
    write_pst,
)
from tests.sources.test_exports import folders, messages, stored

PR_FLAG_STATUS = 0x10900003
PR_LAST_VERB_EXECUTED = 0x10810003
SENT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
HEADERS = ("Received: from mx.example.net (mx.example.net [192.0.2.7])\r\n"
           "\tby mail.example.com; Tue, 4 Mar 2025 05:06:07 +0000\r\n"
           "From: Carol <carol@example.net>\r\nTo: alice@example.com\r\n"
           "Subject: Received with headers\r\nDate: Tue, 4 Mar 2025 06:06:05 +0100\r\n"
           "Message-ID: <received@example.net>\r\nX-Original-Tag: kept\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/alternative; boundary=\"gone\"\r\n\r\n")


def mail(subject: str, **more: object) -> Message:
    props: dict[int, object] = {PR_SUBJECT: subject, PR_BODY: f"body of {subject}\r\n",
                                PR_SENDER_NAME: "Jörg Müller",
                                PR_SENDER_EMAIL_ADDRESS: "joerg@example.com",
                                PR_MESSAGE_DELIVERY_TIME: SENT, PR_MESSAGE_FLAGS: 0}
    props.update({int(k.removeprefix("x")): v for k, v in more.items()})
    return Message(props)


def person(name: str, address: str, kind: int) -> dict[int, object]:
    return {PR_DISPLAY_NAME: name, PR_EMAIL_ADDRESS: address, PR_ADDRTYPE: "SMTP",
            PR_RECIPIENT_TYPE: kind}


BIG = bytes(range(256)) * (3 * 4096)  # 3 MiB, a data tree of many blocks
MID = bytes(reversed(range(256))) * 35 + b"x" * 40  # 9,000 bytes: more than one block


def rich() -> Message:
    m = mail("Quarterly report \u2013 \u00dcberweisung")
    m.props[PR_HTML] = b'<p>See <img src="cid:chart@example.com"> and the files.</p>'
    m.props[PR_INTERNET_MESSAGE_ID] = "<report@example.com>"
    m.props[PR_MESSAGE_FLAGS] = 1  # read
    m.props[PR_FLAG_STATUS] = 2  # flagged for follow-up
    m.props[PR_LAST_VERB_EXECUTED] = 102  # replied
    m.recipients = [person("Alice", "alice@example.com", MAPI_TO),
                    person("Bob, Jr.", "bob@example.com", MAPI_CC),
                    person("Hidden", "hidden@example.com", MAPI_BCC)]
    inner = mail("The original request")
    inner.attachments = [Attachment({PR_ATTACH_LONG_FILENAME: "request.txt",
                                     PR_ATTACH_MIME_TAG: "text/plain"}, data=b"please send\n")]
    m.attachments = [
        Attachment({PR_ATTACH_LONG_FILENAME: "chart.png", PR_ATTACH_MIME_TAG: "image/png",
                    PR_ATTACH_CONTENT_ID: "chart@example.com"}, data=b"\x89PNG\r\n\x1a\n" + MID),
        Attachment({PR_ATTACH_LONG_FILENAME: "Jahresbericht \u00fcber 2024.bin",
                    PR_ATTACH_MIME_TAG: "application/octet-stream"}, data=BIG),
        Attachment({PR_ATTACH_LONG_FILENAME: "empty.txt", PR_ATTACH_MIME_TAG: "text/plain"},
                   data=b""),
        Attachment({PR_ATTACH_LONG_FILENAME: "The original request.msg"}, embedded=inner)]
    return m


def tree() -> list[Folder]:
    received = mail("Received with headers")
    received.props[PR_TRANSPORT_MESSAGE_HEADERS] = HEADERS
    contact = Message({PR_SUBJECT: "Carol", PR_MESSAGE_CLASS: "IPM.Contact"})
    meeting = Message({PR_SUBJECT: "Dentist", PR_MESSAGE_CLASS: "IPM.Appointment"})
    return [Folder("Inbox", [rich(), received], [
                Folder("Projekte", [mail("Projekt Ärger")], [Folder("Überweisung", [
                    mail("Überweisung 4711")])])]),
            Folder("日本語", [mail("会議の議事録")]),
            Folder("Q1/Q2 plans", [mail("a folder name with a slash")]),
            Folder("Contacts", [contact]), Folder("Calendar", [meeting])]


def parse(data: bytes) -> EmailMessage:
    got = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(got, EmailMessage)
    return got


def exported(data: Path, out: Path, folder: str) -> dict[str, bytes]:
    mk_ok(data, "export", "--to", str(out), "--user", "admin", "--folder", folder)
    return {str(parse(p.read_bytes())["Subject"]): p.read_bytes() for p in out.rglob("*.eml")}


def test_a_pst_keeps_its_folder_tree_and_each_message(tmp_path: Path) -> None:
    pst = tmp_path / "alice.pst"
    write_pst(pst, tree())
    data = tmp_path / "data"
    result = mk_ok(data, "import", "--jsonl", str(pst))
    assert folders(data) == {"admin/Inbox": 2, "admin/Inbox/Projekte": 1,
                             "admin/Inbox/Projekte/Überweisung": 1, "admin/日本語": 1,
                             "admin/Q1\u2215Q2 plans": 1}
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summary = lines[-1]["summary"]
    assert summary["archived"] == 6 and summary["failed"] == 0
    skipped = json.dumps(lines)
    assert "1 Contact" in skipped and "1 Appointment" in skipped  # counted per folder

    inbox = messages(data, "admin/Inbox")
    report = inbox["Quarterly report \u2013 \u00dcberweisung"]
    assert set(report["flags"]) == {"seen", "flagged", "answered"}
    assert messages(data, "admin/日本語")["会議の議事録"]["flags"] == []

    got = exported(data, tmp_path / "out", "Inbox")
    m = parse(got["Quarterly report \u2013 \u00dcberweisung"])
    assert m["From"] == "Jörg Müller <joerg@example.com>"
    assert m["To"] == "Alice <alice@example.com>"
    assert m["Cc"] == '"Bob, Jr." <bob@example.com>'
    assert m["Bcc"] == "Hidden <hidden@example.com>"
    assert m["Message-ID"] == "<report@example.com>"
    assert m["Date"].datetime == SENT
    plain = m.get_body(("plain",))
    assert plain is not None
    assert plain.get_content().replace("\r\n", "\n") == "body of Quarterly report \u2013 " \
        "\u00dcberweisung\n"
    html = m.get_body(("html",))
    assert html is not None and "cid:chart@example.com" in html.get_content()
    [chart] = [p for p in m.walk() if p.get_content_type() == "image/png"]
    assert chart["Content-ID"] == "<chart@example.com>"
    assert chart.get_content() == b"\x89PNG\r\n\x1a\n" + MID
    files = {p.get_filename(): p for p in m.iter_attachments()}
    assert files["Jahresbericht \u00fcber 2024.bin"].get_content() == BIG  # byte for byte
    assert files["empty.txt"].get_content() == ""
    inner = files["The original request.msg"]
    assert inner.get_content_type() == "message/rfc822"
    original = inner.get_content()
    assert original["Subject"] == "The original request"
    [request] = list(original.iter_attachments())
    assert request.get_filename() == "request.txt" and request.get_content() == "please send\n"

    # received mail keeps the headers it came with, byte for byte, its MIME fields replaced
    raw = got["Received with headers"]
    assert raw.startswith(HEADERS.split("MIME-Version")[0].encode())
    received = parse(raw)
    assert received.get_all("From") == ["Carol <carol@example.net>"]
    assert b'boundary="gone"' not in raw

    # the same PST again, and a copy of it under another name: nothing is stored twice
    entries, blobs = stored(data)
    mk_ok(data, "import", str(pst))
    assert stored(data) == (entries, blobs)
    copy = tmp_path / "in" / "copy of alice.pst"
    copy.parent.mkdir()
    copy.write_bytes(pst.read_bytes())
    mk_ok(data, "import", str(tmp_path / "in"))  # a PST in a directory: a folder of its own
    assert folders(data)["admin/copy of alice/Inbox"] == 2
    assert stored(data)[1] == blobs  # filed again there, stored once


def test_a_damaged_pst_gives_what_can_be_read_and_names_the_rest(tmp_path: Path) -> None:
    pst = tmp_path / "damaged.pst"
    layout = write_pst(pst, [Folder("Inbox", [mail(f"message {i}") for i in range(6)])])
    broken = layout.messages[2]
    data_bytes = bytearray(pst.read_bytes())
    for offset, size in broken.pc_blocks:
        data_bytes[offset:offset + size] = b"\xa5" * size
    pst.write_bytes(bytes(data_bytes))
    data = tmp_path / "data"
    result = mk(data, "import", "--jsonl", str(pst))
    assert result.exit_code == 1  # something could not be read: said in the exit code
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["summary"]["archived"] == 5 and lines[-1]["summary"]["failed"] == 1
    failure = [line for line in lines if line.get("status") == "failed"]
    assert len(failure) == 1 and "Inbox" in json.dumps(failure)
    assert sorted(messages(data, "admin/Inbox")) == [f"message {i}" for i in range(6) if i != 2]
    # not a PST at all, though it starts like one: a clear error, nothing archived
    fake = tmp_path / "fake.pst"
    fake.write_bytes(b"!BDN" + b"\0" * 600)
    result = mk(data, "import", str(fake))
    assert result.exit_code == 1 and "not a readable PST file" in result.output


def many(count: int, size: int) -> Iterator[Message]:
    for i in range(count):
        m = mail(f"bulk {i}")
        m.attachments = [Attachment({PR_ATTACH_LONG_FILENAME: f"part-{i}.bin"},
                                    data=i.to_bytes(4, "big") * (size // 4))]
        yield m


PEAK = ("import resource, sys\n"
        "from mailkeep.cli import main\n"
        "sys.argv = ['mailkeep', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)\n")


def import_peak_kib(data: Path, pst: Path) -> int:
    """`mailkeep import PST` in a process of its own; its peak resident memory in KiB."""
    done = subprocess.run([sys.executable, "-c", PEAK, "--data", str(data), "import", str(pst)],
                          env=clean_env(), capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    return int(done.stderr.decode().split("peak ")[-1].split()[0])


def test_a_large_pst_is_read_in_constant_memory(tmp_path: Path) -> None:
    """A 200 MB PST (written from a generator) takes no more memory to import than a 40 MB
    one: one item is read at a time, whatever the file's size."""
    small, large = tmp_path / "small.pst", tmp_path / "large.pst"
    write_pst(small, [Folder("Bulk", many(40, 1 << 20))])
    layout = write_pst(large, [Folder("Bulk", many(200, 1 << 20))])
    assert layout.file_size > 200 << 20
    small_peak = import_peak_kib(tmp_path / "data-small", small)
    large_peak = import_peak_kib(tmp_path / "data-large", large)
    assert large_peak < small_peak * 1.25, (small_peak, large_peak)  # not five times as much
    assert folders(tmp_path / "data-large") == {"admin/Bulk": 200}


def test_what_an_attack_with_hostile_pst_files_tried(tmp_path: Path) -> None:
    """Each hostile item is reported or archived within bounds, and the mail around it is
    archived: 300 attachments on one message; twenty attachments that claim 133 MB each of one
    8 KB block; embedded messages that fan out six ways seven levels deep (280,000 messages
    described by a 300 KB file); an attachment name that would make its own MIME headers."""
    from tests.pstshared import Shared, shared_writer

    many_parts = mail("three hundred attachments")
    many_parts.attachments = [
        Attachment({PR_ATTACH_LONG_FILENAME: f"part-{i}.txt", PR_ATTACH_MIME_TAG: "text/plain"},
                   data=f"part {i}\n".encode()) for i in range(300)]
    claimed = Shared(133 << 20)
    bomb = mail("claims gigabytes")
    bomb.attachments = [Attachment({PR_ATTACH_LONG_FILENAME: f"a{i}.txt"}, data=claimed)
                        for i in range(20)]
    level = mail("leaf")
    level.shared = True  # type: ignore[attr-defined]
    for depth in range(7):
        up = mail(f"level {depth}")
        up.shared = True  # type: ignore[attr-defined]
        up.attachments = [Attachment({PR_ATTACH_LONG_FILENAME: f"e{i}.msg"}, embedded=level)
                          for i in range(6)]
        level = up
    fan = mail("fans out")
    fan.attachments = [Attachment({PR_ATTACH_LONG_FILENAME: "e.msg"}, embedded=level)]
    named = mail("named to inject")
    named.attachments = [Attachment({PR_ATTACH_LONG_FILENAME:
                                     "data:text/html\r\nX-Injected: yes\r\n\r\n<script>x</script>"
                                     "\r\n--fake,x"}, data=b"real bytes")]
    pst = tmp_path / "hostile.pst"
    with shared_writer():
        write_pst(pst, [Folder("Inbox", [mail("before"), many_parts, bomb, fan, named,
                                         mail("after")])])
    assert pst.stat().st_size < 1 << 20
    data = tmp_path / "data"
    result = mk(data, "import", "--jsonl", str(pst))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["summary"]["failed"] == 0, lines
    got = exported(data, tmp_path / "out", "Inbox")
    assert set(got) == {"before", "three hundred attachments", "claims gigabytes", "fans out",
                        "named to inject", "after"}
    assert len(list(parse(got["three hundred attachments"]).iter_attachments())) == 300
    assert list(parse(got["claims gigabytes"]).iter_attachments()) == []  # not read, said so
    notes = json.dumps([line for line in lines if line.get("status") == "skipped"])
    # libpff refuses values that large itself; whatever refuses them, each is named
    assert "attachment (no name): cannot be read" in notes and "maximum allocation" in notes
    assert "more than 200 embedded messages" in notes
    assert len(got["fans out"]) < 2 << 20
    raw = got["named to inject"]
    assert b"\nX-Injected" not in raw and b"\n<script>" not in raw  # in its name only
    [attached] = list(parse(raw).iter_attachments())
    assert attached.get_content_type() == "application/octet-stream"
    assert attached.get_content() == b"real bytes"
