"""Outlook MSG files, written here with aspose-email-foss (an MSG writer of its own, MIT), imported
with `mailkeep import`: the message Outlook showed, built from its properties the same way every
time (headers, bodies, attachments byte for byte, inline images, embedded messages, flags,
S/MIME kept exact), what is not mail skipped, damaged files reported."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import compressed_rtf
from aspose.email_foss import msg as amsg
from aspose.email_foss.msg import PropertyId as P

from mailkeep.sources import outlook
from mailkeep.sources.msg import read_msg
from tests.helpers import mk, mk_ok
from tests.sources.test_exports import folders, messages, stored

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def outlook_message(subject: str = "Rechnung 4711 \u2013 \u00dcberweisung") -> amsg.MapiMessage:
    m = amsg.MapiMessage.create(subject, "Hallo Welt\r\nZeile zwei \u20ac\r\n")
    m.set_property(P.SENDER_NAME, "J\u00f6rg M\u00fcller")
    m.set_property(P.SENDER_EMAIL_ADDRESS, "joerg@example.com")
    m.set_property(P.SENDER_ADDRESS_TYPE, "SMTP")
    m.set_property(P.MESSAGE_DELIVERY_TIME, datetime(2026, 3, 15, 10, 30, tzinfo=UTC))
    m.set_property(P.INTERNET_MESSAGE_ID, "<4711@example.com>")
    m.set_property(P.MESSAGE_FLAGS, 1)  # read
    m.set_property(outlook.FLAG_STATUS, outlook.PT_LONG, 2)  # flagged for follow-up
    m.set_property(P.BODY_HTML, outlook.PT_BINARY,
                   b'<html><body><p>Hallo <img src="cid:logo@example.com"></p></body></html>')
    m.set_property(P.INTERNET_CODEPAGE, 65001)
    m.add_recipient("alice@example.com", display_name="Alice Example")
    m.add_recipient("bob@example.com", display_name="Bob, Jr.", recipient_type=2)
    m.add_attachment("logo.png", PNG, mime_type="image/png", content_id="logo@example.com")
    m.add_attachment("\u00dcberweisung 4711.pdf", PDF, mime_type="application/pdf")
    inner = amsg.MapiMessage.create("The forwarded one", "inner body\r\n")
    inner.set_property(P.SENDER_NAME, "Inner Sender")
    inner.set_property(P.SENDER_EMAIL_ADDRESS, "inner@example.com")
    inner.add_attachment("notes.txt", b"inner attachment\n", mime_type="text/plain")
    m.add_embedded_message_attachment(inner, filename="The forwarded one.msg")
    return m


def parse(data: bytes) -> EmailMessage:
    got = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(got, EmailMessage)
    return got


def exported(data: Path, tmp_path: Path, folder: str) -> list[bytes]:
    out = tmp_path / "out"
    mk_ok(data, "export", "--to", str(out), "--user", "admin", "--folder", folder)
    return [p.read_bytes() for p in sorted(out.rglob("*.eml"))]


def test_an_msg_file_becomes_the_message_outlook_showed(tmp_path: Path) -> None:
    saved = tmp_path / "in" / "Rechnungen" / "Rechnung.msg"
    saved.parent.mkdir(parents=True)
    outlook_message().save(str(saved))
    data = tmp_path / "data"
    mk_ok(data, "import", str(tmp_path / "in"))
    assert folders(data) == {"admin/Rechnungen": 1}
    [meta] = messages(data, "admin/Rechnungen").values()
    assert set(meta["flags"]) == {"seen", "flagged"}
    [raw] = exported(data, tmp_path, "Rechnungen")
    got = parse(raw)
    assert got["Subject"] == "Rechnung 4711 \u2013 \u00dcberweisung"
    assert got["From"] == "J\u00f6rg M\u00fcller <joerg@example.com>"
    assert got["To"] == "Alice Example <alice@example.com>"
    assert got["Cc"] == '"Bob, Jr." <bob@example.com>'
    assert got["Message-ID"] == "<4711@example.com>"
    assert got["Date"].datetime == datetime(2026, 3, 15, 10, 30, tzinfo=UTC)
    assert raw.count(b"\r\n") == raw.count(b"\n")  # CRLF throughout
    body = got.get_body(("plain",))
    # (the standard library's parser keeps the CRs of quoted-printable text)
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "Hallo Welt\nZeile zwei \u20ac\n"
    html = got.get_body(("html",))
    assert html is not None and 'src="cid:logo@example.com"' in html.get_content()
    # the image the HTML shows travels with it, inline, in a multipart/related
    related = [p for p in got.walk() if p.get_content_type() == "multipart/related"]
    [logo] = [p for p in related[0].iter_parts() if p.get_content_type() == "image/png"]
    assert logo["Content-ID"] == "<logo@example.com>"
    assert logo.get_content_disposition() == "inline"
    assert logo.get_content() == PNG
    [pdf] = [p for p in got.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == "\u00dcberweisung 4711.pdf" and pdf.get_content() == PDF
    [fwd] = [p for p in got.iter_attachments() if p.get_content_type() == "message/rfc822"]
    inner = fwd.get_content()
    assert inner["Subject"] == "The forwarded one"
    assert inner["From"] == "Inner Sender <inner@example.com>"
    [notes] = list(inner.iter_attachments())
    assert notes.get_filename() == "notes.txt" and notes.get_content() == "inner attachment\n"
    # found by what a user remembers: a word of the subject, the attachment's name
    for query in ("4711", "attachment:\u00dcberweisung", "forwarded"):
        hits = json.loads(mk_ok(data, "call", "SearchArchive", f"query={query}").stdout)
        assert [m["subject"] for m in hits["messages"]] == [got["Subject"]], query
    # the same file again (and a copy of it elsewhere): built to the same bytes, stored once
    copy = tmp_path / "in" / "copy.msg"
    copy.write_bytes(saved.read_bytes())
    mk_ok(data, "import", str(tmp_path / "in"))
    assert stored(data) == (2, 1)


def test_transport_headers_are_kept_as_they_are(tmp_path: Path) -> None:
    headers = ("Received: from mx.example.net (mx.example.net [192.0.2.1])\r\n"
               "\tby mail.example.com with ESMTPS id 4711; Sun, 15 Mar 2026 10:29:58 +0000\r\n"
               "From: =?utf-8?q?J=C3=B6rg?= <joerg@example.com>\r\n"
               "To: alice@example.com\r\nSubject: As it was sent\r\n"
               "Date: Sun, 15 Mar 2026 11:29:57 +0100\r\nMessage-ID: <orig@example.net>\r\n"
               "X-Spam-Score: 0.1\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/alternative; boundary=\"orig\"\r\n\r\n")
    m = outlook_message("As it was sent")
    m.set_property(P.TRANSPORT_MESSAGE_HEADERS, headers)
    path = tmp_path / "received.msg"
    m.save(str(path))
    [built] = list(read_msg(path, ""))
    assert not isinstance(built, outlook.OutlookError) and hasattr(built, "data")
    raw = built.data
    assert raw.startswith(headers.split("MIME-Version")[0].encode())  # byte for byte
    got = parse(raw)
    # what the transport headers say is not said twice, and their MIME fields are replaced
    assert got.get_all("From") == ["J\u00f6rg <joerg@example.com>"]
    assert got.get_all("Date") == ["Sun, 15 Mar 2026 11:29:57 +0100"]
    assert got.get_all("Message-ID") == ["<orig@example.net>"]
    assert got.get_all("Cc") == ['"Bob, Jr." <bob@example.com>']  # not in them: from the table
    assert got.get_content_type() == "multipart/mixed"
    assert b'boundary="orig"' not in raw


def test_a_signed_message_keeps_its_signed_entity_byte_for_byte(tmp_path: Path) -> None:
    entity = (b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
              b'\tmicalg=sha-256; boundary="sig"\r\n\r\n--sig\r\nContent-Type: text/plain\r\n'
              b'\r\nsigned text\r\n--sig\r\nContent-Type: application/pkcs7-signature; '
              b'name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3\r\n'
              b'--sig--\r\n')
    m = amsg.MapiMessage.create("Signed", "signed text")
    m.set_property(P.MESSAGE_CLASS, "IPM.Note.SMIME.MultipartSigned")
    m.set_property(P.SENDER_EMAIL_ADDRESS, "signer@example.com")
    m.add_attachment("smime.p7m", entity, mime_type="multipart/signed")
    path = tmp_path / "signed.msg"
    m.save(str(path))
    [built] = list(read_msg(path, ""))
    raw = built.data  # type: ignore[union-attr]
    assert raw.endswith(b"MIME-Version: 1.0\r\n" + entity)


def test_an_rtf_only_body_keeps_its_html_or_its_rtf(tmp_path: Path) -> None:
    html_rtf = (rb"{\rtf1\ansi\ansicpg1252\fromhtml1 \deff0{\fonttbl{\f0\fswiss Arial;}}"
                rb"{\*\htmltag19 <html>}{\*\htmltag34 <body>}\htmlrtf {\htmlrtf0 Quarterly "
                rb"figures\htmlrtf }\htmlrtf0 {\*\htmltag35 </body>}{\*\htmltag27 </html>}}")
    plain_rtf = rb"{\rtf1\ansi\deff0{\fonttbl{\f0 Arial;}}\f0 Plain \b rich\b0  text\par}"
    for name, rtf in (("html", html_rtf), ("rtf", plain_rtf)):
        m = amsg.MapiMessage.create(f"RTF {name}", "")
        m.set_property(outlook.BODY, outlook.PT_UNICODE, None)
        m.set_property(outlook.RTF_COMPRESSED, outlook.PT_BINARY, compressed_rtf.compress(rtf))
        path = tmp_path / f"{name}.msg"
        m.save(str(path))
        [built] = list(read_msg(path, ""))
        got = parse(built.data)  # type: ignore[union-attr]
        if name == "html":
            html = got.get_body(("html",))
            assert html is not None and "Quarterly" in html.get_content()
        else:
            rtf_part = got.get_body(("rtf",))
            assert rtf_part is not None and rtf_part.get_content() == plain_rtf.decode()
            text = got.get_body(("plain",))
            assert text is not None and "Plain rich text" in text.get_content()


def test_what_is_not_mail_or_not_an_msg_file(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    contact = amsg.MapiMessage.create("Alice Example", "")
    contact.set_property(P.MESSAGE_CLASS, "IPM.Contact")
    contact.save(str(folder / "contact.msg"))
    outlook_message("Cut short").save(str(folder / "cut.msg"))
    (folder / "cut.msg").write_bytes((folder / "cut.msg").read_bytes()[:1536])
    (folder / "text.msg").write_bytes(b"From: a@example.com\r\nSubject: named .msg\r\n\r\nhi\r\n")
    data = tmp_path / "data"
    result = mk(data, "import", "--jsonl", str(folder))
    assert result.exit_code == 1  # the damaged one, named
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summary = lines[-1]["summary"]
    assert summary["archived"] == 1 and summary["failed"] == 1 and summary["skipped"] == 1
    assert any("cut.msg" in json.dumps(line) and "MSG" in json.dumps(line) for line in lines)
    assert set(messages(data, "admin")) == {"named .msg"}  # a text file named .msg is mail


def test_hostile_properties_cannot_forge_headers(tmp_path: Path) -> None:
    m = amsg.MapiMessage.create("Hi\r\nBcc: victim@example.org", "body")
    m.set_property(P.SENDER_NAME, 'Evil "Name"\r\nX-Injected: 1')
    m.set_property(P.SENDER_EMAIL_ADDRESS, "evil@example.com>\r\nX-Injected: 2")
    m.add_attachment('../../etc/pa"ss\r\nX-Injected: 3.txt', b"x", mime_type="text/plain\r\nX: y")
    path = tmp_path / "evil.msg"
    m.save(str(path))
    [built] = list(read_msg(path, ""))
    raw = built.data  # type: ignore[union-attr]
    got = parse(raw)
    assert b"\nX-Injected" not in raw and b"\nBcc" not in raw and b"\nX: y" not in raw
    assert got["Subject"] == "Hi  Bcc: victim@example.org"
    [att] = list(got.iter_attachments())
    assert att.get_content_type() == "text/plain"  # guessed from the name: the tag was bad


def test_what_an_attack_with_hostile_msg_files_tried(tmp_path: Path) -> None:
    """A name that guesses to a type of its own making, an attached .eml tagged message/rfc822
    (kept byte for byte, not base64), addresses and ids that would add recipients or cut a
    header: none of it leaves its place."""
    m = amsg.MapiMessage.create("hostile", "body")
    m.set_property(P.INTERNET_MESSAGE_ID, "<id\x0b@x>")
    m.add_recipient("a@b.c>, evil@x.y", display_name="Victim")
    m.add_attachment("data:text/html\r\nX-Injected: yes\r\n\r\n<b>x</b>,y", b"real bytes")
    attached = b"From: inner@example.org\r\nSubject: attached eml\r\n\r\n8-bit \xe4 body\r\n"
    m.add_attachment("forwarded.eml", attached, mime_type="message/rfc822")
    m.add_attachment("note.bin", b"\x00\x01", mime_type="message/partial")
    path = tmp_path / "hostile.msg"
    m.save(str(path))
    [built] = list(read_msg(path, ""))
    raw = built.data  # type: ignore[union-attr]
    got = parse(raw)
    assert b"\nX-Injected" not in raw
    assert got["Message-ID"] is None  # not a message id: left out rather than cut
    assert got["To"].addresses[0].addr_spec == "unknown@unknown.invalid"
    assert len(got["To"].addresses) == 1  # "evil@x.y" is in the name, not an address
    parts = {p.get_filename(): p for p in got.iter_attachments()}
    [injected] = [p for name, p in parts.items() if name and name.startswith("data:")]
    assert injected.get_content_type() == "application/octet-stream"
    assert injected.get_content() == b"real bytes"
    eml = parts["forwarded.eml"]
    assert eml.get_content_type() == "message/rfc822"
    assert attached in raw  # byte for byte, not base64
    assert parts["note.bin"].get_content_type() == "application/octet-stream"
    assert parts["note.bin"].get_content() == b"\x00\x01"
