"""The text inside attachments: each kind made here with the library that writes it (a PDF
written out by hand, as a PDF producer does), found by `attachment:` and by plain words after a
real import; hostile ones (a zip bomb, an encrypted Office file, a document that takes too long)
cost their own text only and are named in a warning, the message archived all the same."""

from __future__ import annotations

import io
import json
import zipfile
from email.message import EmailMessage
from pathlib import Path

import docx
import openpyxl
import pptx
import pytest
from pptx.util import Inches

from mailkeep.core.mime import documents
from mailkeep.core.mime.documents import attachment_text
from tests.helpers import mk, mk_ok


def pdf(text: str, pages: int = 1) -> bytes:
    """A PDF of `pages` pages, each showing `text` in Helvetica, with a correct xref."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i in range(pages):
        stream = f"BT /F1 12 Tf 72 712 Td ({text} page {i + 1}) Tj ET".encode()
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents "
                       f"{5 + 2 * i} 0 R /Resources << /Font << /F1 3 0 R >> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    return out.getvalue()


def word(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Net", "1,234.00 EUR"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def sheet(text: str, rows: int = 3) -> bytes:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Orders"
    ws.append(["item", "note"])
    for i in range(rows):
        ws.append([i, text if i == 0 else f"row {i}"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def slides(text: str) -> bytes:
    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[6])
    slide.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(1)).text_frame.text = text
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def odt(text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text",
                    compress_type=zipfile.ZIP_STORED)
        zf.writestr("content.xml", (
            '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
            'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
            'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body>'
            f'<office:text><text:h>Title</text:h><text:p>{text}</text:p></office:text>'
            '</office:body></office:document-content>'))
    return out.getvalue()


def zipped(**files: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


KINDS = {
    "invoice.pdf": pdf("Invoice 4711"),
    "contract.docx": word("Contract 4712 signed"),
    "orders.xlsx": sheet("order 4713"),
    "pitch.pptx": slides("Pitch 4714"),
    "letter.odt": odt("Letter 4715"),
    "memo.rtf": b"{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Times;}} Memo 4716\\par}",
    "page.html": b"<html><body><p>Page <b>4717</b></p><script>x=4799</script></body></html>",
    "data.csv": b"id,name\n4718,widget\n",
    "bundle.zip": zipped(**{"inner/report.docx": word("Report 4719"), "notes.txt": b"4720"}),
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_gives_its_text(name: str) -> None:
    text, warnings = attachment_text(name, "application/octet-stream", KINDS[name])
    number = {"invoice.pdf": "4711", "contract.docx": "4712", "orders.xlsx": "4713",
              "pitch.pptx": "4714", "letter.odt": "4715", "memo.rtf": "4716",
              "page.html": "4717", "data.csv": "4718", "bundle.zip": "4719"}[name]
    assert number in text and warnings == [], (text, warnings)
    if name == "page.html":
        assert "4799" not in text  # a script is not text
    if name == "bundle.zip":
        assert "4720" in text
    if name == "contract.docx":
        assert "1,234.00 EUR" in text  # tables too


def test_hostile_attachments_are_named_and_cost_their_own_text_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = zipped(**{"zeros.txt": b"\0" * (8 << 20)})  # expands over 1,000 times
    text, warnings = attachment_text("bomb.zip", "application/zip", bomb)
    assert text == "" and "a zip bomb" in warnings[0] and "bomb.zip" in warnings[0]
    deep = zipped(**{"a.zip": zipped(**{"b.zip": zipped(**{"c.zip": zipped(
        **{"x.txt": b"too deep 4721"})})})})
    text, warnings = attachment_text("deep.zip", "application/zip", deep)
    assert "4721" not in text and "nested deeper" in warnings[0]
    text, warnings = attachment_text("secret.docx", "", b"\xd0\xcf\x11\xe0" + b"\0" * 600)
    assert text == "" and "encrypted" in warnings[0]
    text, warnings = attachment_text("broken.pdf", "application/pdf", b"%PDF-1.4\ngarbage")
    assert text == "" and "not a readable PDF" in warnings[0]
    # a real document that takes longer than the time given to one attachment
    monkeypatch.setattr(documents, "TIME_S", 0.05)
    big = sheet("slow 4722", rows=60_000)
    text, warnings = attachment_text("big.xlsx", "", big)
    assert "took more than" in warnings[0] and "big.xlsx" in warnings[0]


def test_a_pdf_longer_than_the_limit_is_indexed_from_its_first_pages(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_PAGES", 3)
    text, warnings = attachment_text("long.pdf", "application/pdf", pdf("Long 4723", pages=5))
    assert "page 3" in text and "page 4" not in text
    assert "first 3 pages" in warnings[0]


def mail_with(attachments: dict[str, bytes], subject: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "billing@example.org", "me@example.org", subject
    m.set_content("see the attachments")
    for name, data in attachments.items():
        m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return bytes(m)


def test_an_import_finds_words_inside_attachments(tmp_path: Path) -> None:
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "a.eml").write_bytes(mail_with({k: KINDS[k] for k in ("invoice.pdf", "orders.xlsx",
                                                                  "bundle.zip")}, "invoices"))
    (mail / "b.eml").write_bytes(mail_with({"bomb.zip": zipped(
        **{"zeros.txt": b"\0" * (8 << 20)})}, "hostile"))
    data = tmp_path / "data"
    mk_ok(data, "import", str(mail))

    def found(query: str) -> list[str]:
        got = json.loads(mk_ok(data, "call", "SearchArchive", f"query={query}").stdout)
        return [m["subject"] for m in got["messages"]]

    assert found("attachment:4711") == ["invoices"]  # in the PDF
    assert found("4713") == ["invoices"]  # plain words search attachments too
    assert found("attachment:4719") == ["invoices"]  # a Word file inside a zip

    def matched(query: str) -> list[str]:
        got = json.loads(mk_ok(data, "call", "SearchArchive", f"query={query}").stdout)
        [hit] = got["messages"]
        return list(hit["matchedAttachments"])

    # each result says which attachment a word was found in (the zip, for what is inside it)
    assert matched("attachment:4711") == ["invoice.pdf"]
    assert matched("4711 OR attachment:4719") == ["invoice.pdf", "bundle.zip"]
    assert matched("invoices") == []  # in the subject only
    assert matched("orders") == ["orders.xlsx"]  # its name
    assert found("hostile") == ["hostile"]  # archived, found by everything else
    [bomb] = [m for m in json.loads(mk_ok(data, "call", "GetMessages", "folder=admin").stdout)
              if m["subject"] == "hostile"]
    shown = mk(data, "show", bomb["id"])
    assert "bomb.zip" in shown.output and "zip bomb" in shown.output


def test_the_text_inside_attachments_can_be_left_out(tmp_path: Path) -> None:
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "a.eml").write_bytes(mail_with({"invoice.pdf": KINDS["invoice.pdf"]}, "invoices"))
    data = tmp_path / "data"
    mk_ok(data, "settings", "set", "archive.attachment_text", "false")
    mk_ok(data, "import", str(mail))
    got = json.loads(mk_ok(data, "call", "SearchArchive", "query=attachment:4711").stdout)
    assert got["total"] == 0
    named = json.loads(mk_ok(data, "call", "SearchArchive", "query=attachment:invoice").stdout)
    assert named["total"] == 1  # the name is indexed all the same


def test_a_deleted_message_leaves_no_word_of_its_attachments_in_the_index(
        tmp_path: Path) -> None:
    """The index keeps no text of its own (contentless): a row goes only when given the values
    it was made of, the attachments' text included; filed twice, a message is found in both
    folders, and once deleted from both, by none of its words."""
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "a.eml").write_bytes(mail_with({"invoice.pdf": KINDS["invoice.pdf"]}, "invoices"))
    data = tmp_path / "data"
    mk_ok(data, "import", str(mail))
    mk_ok(data, "import", "--folder", "Copy", str(mail))  # the same message, filed again

    def total(query: str) -> int:
        return int(json.loads(mk_ok(data, "call", "SearchArchive",
                                    f"query={query}").stdout)["total"])

    assert total("attachment:4711") == 2
    for message_id in ("1:1", "1:2"):
        mk_ok(data, "call", "DeleteMessage", f"id={message_id}", "reason=tidy")
    assert total("attachment:4711") == 0 and total("invoices") == 0
    assert mk(data, "verify").exit_code == 0


def test_an_office_file_whose_parts_expand_too_far_is_not_read() -> None:
    """A small .docx can hold a document.xml of gigabytes: its parts are measured before the
    library expands them."""
    bomb = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(KINDS["contract.docx"])) as src, \
            zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "word/document.xml":
                data = data.replace(b"</w:body>", b"<w:p/>" * 2_000_000 + b"</w:body>")
            dst.writestr(item, data)
    text, warnings = attachment_text("big.docx", "", bomb.getvalue())
    assert text == "" and "zip bomb" in warnings[0], warnings


def nested_forms(depth: int, fan: int = 10) -> bytes:
    """A PDF of a few kilobytes whose one page draws a form that draws the next form `fan`
    times, `depth` deep: fan**depth text objects for a reader to lay out ("billion laughs")."""
    objs = {1: b"<< /Type /Catalog /Pages 2 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 600 800] /Contents 5 0 R "
               b"/Resources << /XObject << /X 10 0 R >> >> >>",
            4: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            5: b"<< /Length 5 >>\nstream\n/X Do\nendstream"}
    for k in range(depth):
        if k == depth - 1:
            stream, res = b"BT /F1 12 Tf 10 10 Td (laugh) Tj ET", b"<< /Font << /F1 4 0 R >> >>"
        else:
            stream = b" ".join([b"/X Do"] * fan)
            res = b"<< /XObject << /X %d 0 R >> >>" % (11 + k)
        objs[10 + k] = (b"<< /Type /XObject /Subtype /Form /BBox [0 0 600 800] /Resources "
                        + res + b" /Length %d >>\nstream\n" % len(stream) + stream
                        + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for n in sorted(objs):
        offsets[n] = len(out)
        out += b"%d 0 obj\n" % n + objs[n] + b"\nendobj\n"
    xref, top = len(out), max(objs) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % top
    for n in range(1, top):
        out += (b"%010d 00000 n \n" % offsets[n]) if n in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (top, xref)
    return bytes(out)


def test_an_attachment_that_takes_a_workers_memory_takes_nothing_else(tmp_path: Path) -> None:
    """A 2 KB PDF that would take gigabytes to read: its reader runs out of the worker's
    memory (setting archive.extract_memory) and ends the worker for real. The import goes on;
    the messages in the same batch keep their attachments' text; the hostile one is archived,
    found by its words, with a warning that says why its attachment's text is missing."""
    bomb = nested_forms(7)
    assert len(bomb) < 4096
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "a.eml").write_bytes(mail_with({"invoice.pdf": KINDS["invoice.pdf"]}, "before"))
    (mail / "b.eml").write_bytes(mail_with({"laughs.pdf": bomb}, "hostile laughs"))
    (mail / "c.eml").write_bytes(mail_with({"contract.docx": KINDS["contract.docx"]}, "after"))
    data = tmp_path / "data"
    mk_ok(data, "settings", "set", "archive.extract_memory", "256")
    result = mk_ok(data, "import", "--jsonl", str(mail))
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary["archived"] == 3 and summary["failed"] == 0

    def found(query: str) -> list[str]:
        got = json.loads(mk_ok(data, "call", "SearchArchive", f"query={query}").stdout)
        return [m["subject"] for m in got["messages"]]

    assert found("attachment:4711") == ["before"]
    assert found("attachment:4712") == ["after"]
    assert found("laughs") == ["hostile laughs"]
    [hostile] = [m for m in json.loads(mk_ok(data, "call", "GetMessages", "folder=admin").stdout)
                 if m["subject"] == "hostile laughs"]
    shown = mk(data, "show", hostile["id"])
    assert "reading it ended the worker" in shown.output


def test_a_worker_ended_among_many_batches_costs_only_its_message(tmp_path: Path) -> None:
    """400 messages, each with a spreadsheet that takes a worker some 90 ms to read, parsed by
    the import's pool of two workers in batches of 64, two in flight at a time; the first
    message of the sixth batch ends its worker while the fifth batch is still being read in
    the other. Only that one message is archived without its attachment's text: the fifth
    batch, and the rest of the sixth, keep theirs."""
    mail = tmp_path / "mail"
    mail.mkdir()
    slow = sheet("memo", rows=4000)
    for i in range(400):
        files = {"laughs.pdf": nested_forms(7)} if i == 320 else {f"n{i}.xlsx": slow}
        (mail / f"{i:04d}.eml").write_bytes(mail_with(files, f"message {i}"))
    data = tmp_path / "data"
    mk_ok(data, "settings", "set", "archive.extract_memory", "256")
    result = mk_ok(data, "import", "--jsonl", str(mail))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["summary"]["archived"] == 400
    ended = [line for line in lines if "reading it ended the worker" in json.dumps(line)]
    assert [line["origin"][-8:] for line in ended] == ["0320.eml"]
    got = json.loads(mk_ok(data, "call", "SearchArchive", "query=attachment:memo").stdout)
    assert got["total"] == 399
