"""The text inside attachments, for the index: PDF (pypdfium2, PDFium's own text layer), Word
(python-docx), Excel (openpyxl, read-only), PowerPoint (python-pptx), OpenDocument (its
content.xml), RTF (striprtf), HTML, plain text and CSV, and the same inside zip files.

Every attachment is hostile until read: each is bounded in time (a timer interrupts the
library: TIME_S), in output (MAX_CHARS), in what a zip may expand to (MAX_UNZIPPED, and no
member above MAX_RATIO times its compressed size) and in nesting (MAX_DEPTH). It runs in worker
processes (core/extraction.py for the server's mail, core/ingest.py for imports), which
worker_limits() bounds further: their memory (RLIMIT_DATA: an allocation beyond it fails) and,
for a library stuck in its own code where the timer cannot reach it, a watchdog thread that ends
the worker HARD_GRACE_S after an attachment's deadline. A worker that ends so takes nothing
with it: the message is read again without the text of its attachments, archived and found by
everything else, with a warning. An attachment whose text cannot be had (encrypted, damaged,
cut off) is named in a warning too.
"""

from __future__ import annotations

import io
import os
import resource
import signal
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from xml.etree import ElementTree

from mailkeep.core.mime import charsets
from mailkeep.core.mime.text import html_to_text

TIME_S = 10.0  # one attachment's text, at most
MAX_CHARS = 2_000_000  # of text from one attachment
MAX_INPUT = 64 << 20  # an attachment larger than this is not read for text
MAX_UNZIPPED = 64 << 20  # what a zip attachment's members may expand to, together
MAX_RATIO = 200  # a member expanding more than this is a zip bomb
MAX_DEPTH = 2  # zips inside zips
MAX_MEMBERS = 1000
MAX_PAGES = 2000
MAX_CELLS = 2_000_000
MAX_XML = 32 << 20  # an Office or OpenDocument part read as XML
HARD_GRACE_S = 10.0  # after an attachment's deadline, the watchdog ends its worker
EXIT_STUCK = 75  # a worker's exit status when its watchdog ended it

_hard_deadline: float | None = None  # monotonic; set while an attachment is read in a worker
_watchdog: threading.Thread | None = None


def worker_limits(memory_bytes: int) -> None:
    """For a worker process: its memory bounded, and a watchdog that ends it when an
    attachment's library does not give control back. Never call it in a server or a command
    line's own process."""
    global _watchdog
    if memory_bytes > 0:
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    if _watchdog is None:
        _watchdog = threading.Thread(target=_watch, name="attachment-watchdog", daemon=True)
        _watchdog.start()


def _watch() -> None:
    while True:
        time.sleep(0.5)
        until = _hard_deadline
        if until is not None and time.monotonic() > until:
            os.write(2, b"mailkeep: an attachment's text extraction did not stop at its "
                        b"deadline: this worker ends\n")
            os._exit(EXIT_STUCK)


class Unreadable(Exception):
    """Why an attachment's text could not be had (the warning's words)."""


@dataclass
class Found:
    text: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    room: int = MAX_CHARS

    def add(self, text: str) -> None:
        text = text.replace("\x00", " ").strip()
        if not text or self.room <= 0:
            return
        if len(text) > self.room:
            self.text.append(text[: self.room])
            self.room = 0
            raise Unreadable(f"its text is longer than {MAX_CHARS:,} characters: the rest is "
                             "not indexed")
        self.text.append(text)
        self.room -= len(text) + 1


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt whatever runs for longer than `seconds` (the main thread of a worker only;
    elsewhere the worker's own deadline is the bound)."""
    global _hard_deadline
    try:
        old = signal.signal(signal.SIGALRM, _expired)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    if _watchdog is not None:
        _hard_deadline = time.monotonic() + seconds + HARD_GRACE_S
    try:
        yield
    finally:
        _hard_deadline = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _expired(signum: int, frame: object) -> None:
    raise Unreadable(f"reading it took more than {TIME_S:g} s: not indexed")


def kind_of(name: str, ctype: str, data: bytes) -> str | None:
    """Which reader an attachment needs (by its bytes first, then its name and type)."""
    lower = name.lower()
    ext = lower.rpartition(".")[2] if "." in lower else ""
    if data.startswith(b"%PDF-") or ext == "pdf" or ctype == "application/pdf":
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        if ext in ("docx", "docm", "dotx"):
            return "docx"
        if ext in ("xlsx", "xlsm"):
            return "xlsx"
        if ext in ("pptx", "pptm", "ppsx"):
            return "pptx"
        if ext in ("odt", "ods", "odp", "odg"):
            return "odf"
        if ext == "zip" or ctype in ("application/zip", "application/x-zip-compressed"):
            return "zip"
        return _zip_kind(data)
    if data.startswith(b"{\\rtf") or ext == "rtf" or ctype in ("application/rtf", "text/rtf"):
        return "rtf"
    if ext in ("html", "htm") or ctype == "text/html":
        return "html"
    if ext in ("txt", "csv", "tsv", "log", "md", "ics", "vcf") or ctype.startswith("text/"):
        return "text"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        # OLE2: .doc/.xls/.ppt, or an encrypted .docx/.xlsx/.pptx (Office wraps those so)
        return "encrypted" if ext in ("docx", "xlsx", "pptx") else "ole"
    return None


def _zip_kind(data: bytes) -> str:
    """An Office or OpenDocument file named oddly, or a zip of files."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist()[:MAX_MEMBERS])
    except (zipfile.BadZipFile, ValueError, OSError):
        return "zip"
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    if "content.xml" in names and "mimetype" in names:
        return "odf"
    return "zip"


def attachment_text(name: str, ctype: str, data: bytes) -> tuple[str, list[str]]:
    """The text of one attachment, and warnings naming it when the text could not all be
    had. Never raises."""
    found = Found()
    shown = name or ctype
    if len(data) > MAX_INPUT:
        return "", [f"attachment {shown}: larger than {MAX_INPUT >> 20} MiB, its text is not "
                    "indexed"]
    started = time.monotonic()
    try:
        with _deadline(TIME_S):
            _read(found, name, ctype, data, 0, started)
    except Unreadable as exc:
        found.warnings.append(f"attachment {shown}: {exc}")
    except MemoryError:
        found.warnings.append(f"attachment {shown}: too large to read for its text")
    except RecursionError:
        found.warnings.append(f"attachment {shown}: nested too deep to read")
    except Exception as exc:  # a library's own failure on a damaged file
        found.warnings.append(f"attachment {shown}: its text cannot be read "
                              f"({type(exc).__name__})")
    return "\n".join(found.text), found.warnings[:10]


def _read(found: Found, name: str, ctype: str, data: bytes, depth: int,
          started: float) -> None:
    kind = kind_of(name, ctype, data)
    reader = READERS.get(kind or "")
    if kind == "ole":
        raise Unreadable("an older Office format (.doc, .xls, .ppt): its text is not indexed")
    if kind == "encrypted":
        raise Unreadable("it is encrypted: its text is not indexed")
    if reader is None:
        return
    if kind == "zip":
        _zip(found, data, depth, started)
    else:
        reader(found, data)


def _pdf(found: Found, data: bytes) -> None:
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise Unreadable("it is encrypted: its text is not indexed") from None
        raise Unreadable("it is not a readable PDF") from None
    try:
        for i in range(min(len(pdf), MAX_PAGES)):
            page = pdf[i]
            try:
                textpage = page.get_textpage()
                try:
                    found.add(textpage.get_text_range())
                finally:
                    textpage.close()
            finally:
                page.close()
        if len(pdf) > MAX_PAGES:
            raise Unreadable(f"only its first {MAX_PAGES} pages are indexed")
    finally:
        pdf.close()


def _check_parts(data: bytes) -> None:
    """An Office or OpenDocument file is a zip: its parts may not expand past the limits
    (a 1.5 MB .docx can hold a 1.5 GB document.xml) before a library reads them."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise Unreadable("it is not a readable file of its kind") from None
    with zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS * 10:
            raise Unreadable("it holds too many parts: not read")
        total = 0
        for m in members:
            if m.file_size > MAX_RATIO * max(m.compress_size, 1) or m.file_size > MAX_XML:
                raise Unreadable(f"its part {m.filename[:100]} would expand to "
                                 f"{m.file_size:,} bytes (a zip bomb): not read")
            total += m.file_size
        if total > MAX_UNZIPPED:
            raise Unreadable(f"its parts expand to more than {MAX_UNZIPPED >> 20} MiB: not "
                             "read")


def _docx(found: Found, data: bytes) -> None:
    import docx

    _check_parts(data)
    document = docx.Document(io.BytesIO(data))
    for paragraph in document.paragraphs:
        found.add(paragraph.text)
    for table in document.tables:
        for row in table.rows:
            found.add("\t".join(cell.text for cell in row.cells))


def _xlsx(found: Found, data: bytes) -> None:
    import openpyxl

    _check_parts(data)
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    cells = 0
    try:
        for sheet in book.worksheets:
            found.add(sheet.title)
            for row in sheet.iter_rows(values_only=True):
                values = [str(v) for v in row if v is not None]
                cells += len(row)
                if cells > MAX_CELLS:
                    raise Unreadable(f"only its first {MAX_CELLS:,} cells are indexed")
                found.add("\t".join(values))
    finally:
        book.close()


def _pptx(found: Found, data: bytes) -> None:
    import pptx

    _check_parts(data)
    presentation = pptx.Presentation(io.BytesIO(data))
    for slide in presentation.slides:
        for shape in slide.shapes:
            if shape.has_text_frame:
                found.add(shape.text_frame.text)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            found.add(slide.notes_slide.notes_text_frame.text)


def _odf(found: Found, data: bytes) -> None:
    _check_parts(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo("content.xml")
        if info.file_size > MAX_XML or info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise Unreadable("its content is too large, or a zip bomb: not indexed")
        xml = zf.read(info)
    if b"<!DOCTYPE" in xml[:4096] or b"<!ENTITY" in xml:
        raise Unreadable("its content declares entities: not read")
    root = ElementTree.fromstring(xml)
    for element in root.iter():
        if element.tag.endswith("}p") or element.tag.endswith("}h"):
            found.add("".join(element.itertext()))


def _rtf(found: Found, data: bytes) -> None:
    from striprtf.striprtf import rtf_to_text

    found.add(str(rtf_to_text(data.decode("latin-1"), errors="ignore")))  # type: ignore[no-untyped-call]


def _html(found: Found, data: bytes) -> None:
    found.add(html_to_text(charsets.decode(data[: MAX_CHARS * 8], None, [])))


def _text(found: Found, data: bytes) -> None:
    found.add(charsets.decode(data[: MAX_CHARS * 4], None, []))


def _zip(found: Found, data: bytes, depth: int, started: float) -> None:
    if depth >= MAX_DEPTH:
        raise Unreadable(f"zips nested deeper than {MAX_DEPTH}: the inner ones are not read")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise Unreadable("it is not a readable zip file") from None
    total = 0
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > MAX_MEMBERS:
            raise Unreadable(f"it holds more than {MAX_MEMBERS} files: not read")
        for member in members:
            if member.flag_bits & 0x1:
                raise Unreadable(f"{member.filename[:100]} in it is encrypted: not read")
            if member.file_size > MAX_RATIO * max(member.compress_size, 1):
                raise Unreadable(f"{member.filename[:100]} in it would expand "
                                 f"{member.file_size // max(member.compress_size, 1)} times "
                                 "(a zip bomb): not read")
            total += member.file_size
            if total > MAX_UNZIPPED:
                raise Unreadable(f"its files expand to more than {MAX_UNZIPPED >> 20} MiB: "
                                 "the rest is not read")
            inner = member.filename.rsplit("/", 1)[-1]
            if kind_of(inner, "", b"") is None and not inner.lower().endswith(
                    (".zip", ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp")):
                continue  # not a kind read for text (checked by name before reading it)
            with zf.open(member) as fh:
                content = fh.read(member.file_size + 1)
            if len(content) > member.file_size:
                raise Unreadable(f"{member.filename[:100]} in it is larger than it says")
            found.add(inner)
            _read(found, inner, "", content, depth + 1, started)


READERS: dict[str, Callable[[Found, bytes], None]] = {
    "pdf": _pdf, "docx": _docx, "xlsx": _xlsx, "pptx": _pptx, "odf": _odf, "rtf": _rtf,
    "html": _html, "text": _text, "zip": lambda found, data: None,
}
