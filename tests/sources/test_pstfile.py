"""The PST writer of tests/pstfile.py makes real PST files.

Every file is read back by two independent readers, libpff (pypff) and libpst (readpst,
lspst, Debian's pst-utils), and its NDB structures (HEADER, B-tree pages, block trailers,
allocation maps) are checked against [MS-PST] by a small reader here, since neither library
checks all of them. Covered: a Unicode folder tree, the message properties, recipients,
attachments of every size class (heap, subnode, data tree, XXBLOCK), an embedded message,
both encodings, a 200 MB PST written from a generator, and a damaged message block.
"""

from __future__ import annotations

import ctypes
import email
import email.policy
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pypff
import pytest

from tests.helpers import ROOT
from tests.pstfile import (
    MAPI_BCC,
    MAPI_CC,
    MAPI_TO,
    PR_ATTACH_CONTENT_ID,
    PR_ATTACH_FILENAME,
    PR_ATTACH_LONG_FILENAME,
    PR_ATTACH_METHOD,
    PR_ATTACH_MIME_TAG,
    PR_BODY,
    PR_CLIENT_SUBMIT_TIME,
    PR_DISPLAY_NAME,
    PR_EMAIL_ADDRESS,
    PR_HTML,
    PR_INTERNET_MESSAGE_ID,
    PR_MESSAGE_CLASS,
    PR_MESSAGE_DELIVERY_TIME,
    PR_MESSAGE_FLAGS,
    PR_RECIPIENT_TYPE,
    PR_RTF_COMPRESSED,
    PR_SENDER_EMAIL_ADDRESS,
    PR_SENDER_NAME,
    PR_SUBJECT,
    PR_TRANSPORT_MESSAGE_HEADERS,
    Attachment,
    Folder,
    Message,
    PstLayout,
    compress_rtf,
    crc32,
    write_pst,
)

READPST = shutil.which("readpst")
LSPST = shutil.which("lspst")
IPM = "Top of Personal Folders"


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------


def open_pst(path: Path) -> pypff.file:
    pst = pypff.file()
    pst.open(str(path))
    return pst


def subfolders(folder: pypff.folder) -> list[pypff.folder]:
    return [folder.get_sub_folder(i) for i in range(folder.number_of_sub_folders)]


def ipm_subtree(pst: pypff.file) -> pypff.folder:
    found = [sub for sub in subfolders(pst.get_root_folder()) if sub.name == IPM]
    assert len(found) == 1
    return found[0]


def folder_at(pst: pypff.file, *path: str) -> pypff.folder:
    folder = ipm_subtree(pst)
    for name in path:
        found = [sub for sub in subfolders(folder) if sub.name == name]
        assert len(found) == 1, (name, [sub.name for sub in subfolders(folder)])
        folder = found[0]
    return folder


def messages_of(folder: pypff.folder) -> dict[str, pypff.message]:
    """The folder's messages by subject (libpff lists them in its own order)."""
    out = {}
    for i in range(folder.number_of_sub_messages):
        msg = folder.get_sub_message(i)
        out[msg.subject] = msg
    assert len(out) == folder.number_of_sub_messages
    return out


def tree_of(folder: pypff.folder) -> dict[str, object]:
    return {sub.name: tree_of(sub) for sub in subfolders(folder)}


def entry(item: pypff.item, tag: int, record_set: pypff.record_set | None = None) -> bytes | None:
    """The raw value of a property, or None when the item does not have it."""
    rs = record_set if record_set is not None else item.get_record_set(0)
    for e in rs.entries:
        if e.entry_type == tag >> 16 and e.value_type == tag & 0xFFFF:
            return e.data or b""
    return None


def need_pst_utils() -> None:
    if READPST is None or LSPST is None:
        pytest.fail("readpst and lspst are missing: apt-get install pst-utils")


def readpst(path: Path, out: Path) -> dict[tuple[str, ...], list[EmailMessage]]:
    """readpst -r -e: one .eml per message in a directory per folder, keyed by folder path."""
    need_pst_utils()
    out.mkdir()
    # -j 0: no parallel jobs (with them, readpst 0.6.76 now and then loses a message or an
    # attachment of the same unchanged file: its workers race)
    run = subprocess.run([READPST, "-j", "0", "-r", "-e", "-o", str(out), str(path)],
                         capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr
    (store,) = out.iterdir()
    found: dict[tuple[str, ...], list[EmailMessage]] = {}
    for eml in sorted(store.rglob("*.eml")):
        key = eml.parent.relative_to(store).parts
        # readpst starts an embedded message with an mbox "From " line: not a header
        raw = re.sub(rb"(Content-Type: message/rfc822\r?\n\r?\n)>From [^\n]*\n", rb"\1",
                     eml.read_bytes())
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        found.setdefault(key, []).append(parsed)
    return found


def lspst(path: Path) -> list[str]:
    need_pst_utils()
    run = subprocess.run([LSPST, str(path)], capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout.decode("utf-8").splitlines()


def body_of(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None, subtype
    content = part.get_content()
    assert isinstance(content, str)
    return content


def attachments_of(msg: EmailMessage) -> dict[str, bytes]:
    out = {}
    for part in msg.iter_attachments():
        if part.get_content_type() == "message/rfc822":
            continue
        name = part.get_filename()
        assert name is not None
        out[name] = part.get_payload(decode=True) or b""
    return out


# libpff's own attachment API (pypff has no binding for the message of an embedded attachment):
# the functions are exported by the pypff module, and a pypff item holds its libpff_item_t
# pointer right after the object header.
_LIBPFF = ctypes.CDLL(pypff.__file__)
_P = ctypes.c_void_p


def _libpff(name: str, *args: object) -> None:
    result = getattr(_LIBPFF, name)(*args)
    assert result == 1, f"{name} returned {result}"


def libpff_item(item: pypff.item) -> int:
    pointer = _P.from_address(id(item) + object.__basicsize__).value
    assert pointer
    identifier = ctypes.c_uint32()
    _libpff("libpff_item_get_identifier", _P(pointer), ctypes.byref(identifier), None)
    assert identifier.value == item.identifier
    return pointer


def libpff_embedded(attachment: pypff.attachment) -> tuple[str, dict[int, bytes]]:
    """The subject and the attachments' data of an embedded message, read by libpff."""
    embedded = _P()
    _libpff("libpff_attachment_get_item", _P(libpff_item(attachment)), ctypes.byref(embedded),
            None)
    try:
        size = ctypes.c_size_t()
        _libpff("libpff_message_get_entry_value_utf8_string_size", embedded,
                ctypes.c_uint32(PR_SUBJECT >> 16), ctypes.byref(size), None)
        text = ctypes.create_string_buffer(size.value)
        _libpff("libpff_message_get_entry_value_utf8_string", embedded,
                ctypes.c_uint32(PR_SUBJECT >> 16), text, size, None)
        count = ctypes.c_int()
        _libpff("libpff_message_get_number_of_attachments", embedded, ctypes.byref(count), None)
        datas = {}
        for index in range(count.value):
            att = _P()
            _libpff("libpff_message_get_attachment", embedded, index, ctypes.byref(att), None)
            data_size = ctypes.c_uint64()
            _libpff("libpff_attachment_get_data_size", att, ctypes.byref(data_size), None)
            buffer = ctypes.create_string_buffer(max(data_size.value, 1))
            _LIBPFF.libpff_attachment_data_read_buffer.restype = ctypes.c_ssize_t
            read = _LIBPFF.libpff_attachment_data_read_buffer(att, buffer, data_size.value, None)
            assert read == data_size.value
            datas[index] = buffer.raw[: data_size.value]
            _libpff("libpff_item_free", ctypes.byref(att), None)
        return text.value.decode("utf-8"), datas
    finally:
        _libpff("libpff_item_free", ctypes.byref(embedded), None)


# ---------------------------------------------------------------------------------------------
# An independent check of the NDB layer
# ---------------------------------------------------------------------------------------------

AMAP_FIRST, AMAP_SPAN = 0x4400, 253_952


def _sig(ib: int, bid: int) -> int:
    value = ib ^ bid
    return ((value >> 16) ^ value) & 0xFFFF


def check_ndb(path: Path) -> dict[str, object]:
    """Check the HEADER, both B-trees, every block's trailer and the AMaps; returns facts."""
    data = Path(path).read_bytes()
    head = data[:564]
    assert head[0:4] == b"!BDN" and head[8:10] == b"SM"
    assert struct.unpack_from("<HH", head, 10) == (23, 19)
    assert struct.unpack_from("<I", head, 4)[0] == crc32(head[8 : 8 + 471])
    assert struct.unpack_from("<I", head, 524)[0] == crc32(head[8 : 8 + 516])
    assert head[512] == 0x80 and head[513] in (0, 1)
    eof, amap_last, amap_free, _, nbt_bid, nbt_ib, bbt_bid, bbt_ib = struct.unpack_from(
        "<8Q", head, 184
    )
    assert head[248] == 0x02  # fAMapValid
    assert eof == len(data) and (eof - AMAP_FIRST) % AMAP_SPAN == 0
    used = bytearray(len(data) // 64)

    def mark(ib: int, size: int) -> None:
        assert ib % 64 == 0 and size % 64 == 0 and ib + size <= eof
        assert used[ib // 64 : (ib + size) // 64].count(1) == 0, f"overlap at {ib:#x}"
        used[ib // 64 : (ib + size) // 64] = b"\x01" * (size // 64)

    def page(ib: int, ptype: int, bid: int | None) -> bytes:
        raw = data[ib : ib + 512]
        kind, again, sig, crc, back = struct.unpack_from("<BBHIQ", raw, 496)
        assert kind == again == ptype and crc == crc32(raw[:496]), f"page at {ib:#x}"
        if ptype in (0x80, 0x81):
            assert ib % 512 == 0 and back == bid and sig == _sig(ib, back)
        else:
            assert back == ib and sig == 0
        mark(ib, 512)
        return raw

    def btree(ib: int, bid: int, ptype: int, low: int, out: list[bytes], pages: list[int]) -> None:
        raw = page(ib, ptype, bid)
        pages.append(ib)
        count, most, size, level = raw[488:492]
        assert count <= most == 488 // size
        last = low
        for i in range(count):
            item = raw[i * size : (i + 1) * size]
            key = struct.unpack_from("<Q", item)[0]
            assert key >= last
            last = key
            if level:
                assert size == 24
                child_bid, child_ib = struct.unpack_from("<QQ", item, 8)
                btree(child_ib, child_bid, ptype, key, out, pages)
            else:
                out.append(item)

    bbt: list[bytes] = []
    bbt_pages: list[int] = []
    btree(bbt_ib, bbt_bid, 0x80, 0, bbt, bbt_pages)
    blocks = {}
    for item in bbt:
        bid, ib, cb, refs = struct.unpack_from("<QQHH", item)
        total = (cb + 16 + 63) // 64 * 64
        assert total <= 8192 and refs >= 1
        t_cb, t_sig, t_crc, t_bid = struct.unpack_from("<HHIQ", data, ib + total - 16)
        assert (t_cb, t_sig, t_bid) == (cb, _sig(ib, bid), bid), f"block {bid:#x}"
        assert t_crc == crc32(data[ib : ib + cb]), f"block {bid:#x}"
        mark(ib, total)
        blocks[bid] = (ib, cb)
    nbt: list[bytes] = []
    nbt_pages: list[int] = []
    btree(nbt_ib, nbt_bid, 0x81, 0, nbt, nbt_pages)
    nodes = {}
    for item in nbt:
        nid, bid_data, bid_sub, parent = struct.unpack_from("<QQQI", item)
        assert bid_data in blocks and (bid_sub == 0 or bid_sub in blocks)
        nodes[nid] = (bid_data, bid_sub, parent)
    free = 0
    regions = (eof - AMAP_FIRST) // AMAP_SPAN
    for region in range(regions):
        start = AMAP_FIRST + region * AMAP_SPAN
        for extra, ptype, present in (
            (512, 0x83, region % 8 == 0),
            (1024 if region % 8 == 0 else 512, 0x82, region >= 128 and (region - 128) % 496 == 0),
        ):
            if present:
                page(start + extra, ptype, None)
        bitmap = page(start, 0x84, None)[:496]
        slots = used[start // 64 : start // 64 + 3968]
        slots[0:8] = b"\x01" * 8
        expected = bytes(
            sum(slots[i * 8 + j] << (7 - j) for j in range(8)) for i in range(496)
        )
        assert bitmap == expected, f"AMap of region {region}"
        free += slots.count(0) * 64
    assert amap_last == AMAP_FIRST + (regions - 1) * AMAP_SPAN
    assert amap_free == free
    return {"blocks": blocks, "nodes": nodes, "nbt_pages": nbt_pages, "bbt_pages": bbt_pages,
            "regions": regions, "crypt": head[513]}


# ---------------------------------------------------------------------------------------------
# Content
# ---------------------------------------------------------------------------------------------

DELIVERED = datetime(2024, 3, 1, 9, 30, 15, tzinfo=UTC)
SUBMITTED = datetime(2024, 3, 1, 9, 29, 58, tzinfo=UTC)
HTML = "<html><body><p>Grüße aus <b>Köln</b> – 😀</p></body></html>"
RTF = rb"{\rtf1\ansi\deff0 {\fonttbl {\f0 Arial;}} Gr\'fc\'dfe aus K\'f6ln\par }"
RECIPIENTS = [
    {PR_DISPLAY_NAME: "Bob Builder", PR_EMAIL_ADDRESS: "bob@example.org",
     PR_RECIPIENT_TYPE: MAPI_TO},
    {PR_DISPLAY_NAME: "Zoë Çelik", PR_EMAIL_ADDRESS: "zoe@example.org",
     PR_RECIPIENT_TYPE: MAPI_CC},
    {PR_DISPLAY_NAME: "Hidden Person", PR_EMAIL_ADDRESS: "hidden@example.org",
     PR_RECIPIENT_TYPE: MAPI_BCC},
]


def full_message() -> Message:
    subject = "Quarterly report Q1"
    headers = (
        "From: Alice Sender <alice@example.com>\r\n"
        "To: Bob Builder <bob@example.org>\r\n"
        "Cc: =?utf-8?q?Zo=C3=AB_=C3=87elik?= <zoe@example.org>\r\n"
        f"Subject: {subject}\r\n"
        "Message-ID: <q1@example.com>\r\n"
        "Date: Fri, 01 Mar 2024 09:29:58 +0000\r\n"
        "MIME-Version: 1.0\r\n\r\n"
    )
    return Message(
        {
            PR_SUBJECT: subject,
            PR_TRANSPORT_MESSAGE_HEADERS: headers,
            PR_BODY: "Grüße aus Köln – 😀\r\nSecond line.\r\n",
            PR_HTML: HTML.encode("utf-8"),
            PR_RTF_COMPRESSED: compress_rtf(RTF),
            PR_SENDER_NAME: "Alice Sender",
            PR_SENDER_EMAIL_ADDRESS: "alice@example.com",
            PR_MESSAGE_DELIVERY_TIME: DELIVERED,
            PR_CLIENT_SUBMIT_TIME: SUBMITTED,
            PR_MESSAGE_FLAGS: 0x01,
            PR_INTERNET_MESSAGE_ID: "<q1@example.com>",
        },
        recipients=[dict(r) for r in RECIPIENTS],
    )


def noted(subject: str, body: str = "") -> Message:
    return Message({PR_SUBJECT: subject, PR_BODY: body or f"Body of {subject}\r\n"})


def attachment_data(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


SIZES = {"empty.txt": 0, "small.txt": 100, "medium.bin": 9000, "large.bin": 3_000_000}


def attachment_message() -> Message:
    atts = [
        Attachment({PR_ATTACH_LONG_FILENAME: name, PR_ATTACH_FILENAME: name[:8],
                    PR_ATTACH_MIME_TAG: "application/octet-stream",
                    PR_ATTACH_CONTENT_ID: f"{name}@cid"}, data=attachment_data(size, size))
        for name, size in SIZES.items()
    ]
    inner = Message(
        {PR_SUBJECT: "Inner forwarded", PR_BODY: "Inner body\r\n"},
        recipients=[dict(RECIPIENTS[0])],
        attachments=[Attachment({PR_ATTACH_LONG_FILENAME: "inner.txt"},
                                data=b"inner attachment " * 700)],
    )
    atts.append(Attachment({PR_DISPLAY_NAME: "Inner forwarded"}, embedded=inner))
    return Message({PR_SUBJECT: "With attachments", PR_BODY: "See attached.\r\n"},
                   attachments=atts)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_an_empty_store_is_a_valid_pst(tmp_path: Path) -> None:
    path = tmp_path / "empty.pst"
    layout = write_pst(path, [])
    facts = check_ndb(path)
    assert layout.file_size == path.stat().st_size
    assert sorted(layout.nbt_pages) == sorted(facts["nbt_pages"])  # type: ignore[call-overload]
    assert sorted(layout.bbt_pages) == sorted(facts["bbt_pages"])  # type: ignore[call-overload]
    pst = open_pst(path)
    assert {sub.name for sub in subfolders(pst.get_root_folder())} == {IPM, "Search Root"}
    assert tree_of(ipm_subtree(pst)) == {}
    nodes = facts["nodes"]
    assert isinstance(nodes, dict)
    for nid in (0x21, 0x61, 0x122, 0x12D, 0x12E, 0x12F, 0x60D, 0x60E, 0x60F, 0x610):
        assert nid in nodes
    assert nodes[0x122][2] == 0x122
    assert pst.encryption_type == 1 and pst.number_of_orphan_items == 0
    store = pst.message_store
    assert entry(store, PR_DISPLAY_NAME) == "Personal Folders".encode("utf-16-le")
    assert lspst(path) == []


TREE = [
    Folder("Inbox", [noted("in inbox")], [Folder("2024", [noted("in 2024")])]),
    Folder("Projekte", [noted("in projekte")], [
        Folder("Überweisung", [noted("in überweisung")], [Folder("Ärger", [noted("deep")])]),
    ]),
    Folder("日本語", [noted("日本語のメール")]),
    Folder("Ελληνικά", [noted("ελληνικό μήνυμα")]),
]
TREE_SHAPE = {
    "Inbox": {"2024": {}},
    "Projekte": {"Überweisung": {"Ärger": {}}},
    "日本語": {},
    "Ελληνικά": {},
}


def test_a_unicode_folder_tree_reads_back_in_the_same_shape(tmp_path: Path) -> None:
    path = tmp_path / "tree.pst"
    layout = write_pst(path, TREE, display_name="Tree Store")
    check_ndb(path)
    pst = open_pst(path)
    assert tree_of(ipm_subtree(pst)) == TREE_SHAPE
    assert set(messages_of(folder_at(pst, "Projekte", "Überweisung", "Ärger"))) == {"deep"}
    assert set(messages_of(folder_at(pst, "日本語"))) == {"日本語のメール"}
    assert [m.folder_path for m in layout.messages] == [
        ("Inbox",), ("Inbox", "2024"), ("Projekte",), ("Projekte", "Überweisung"),
        ("Projekte", "Überweisung", "Ärger"), ("日本語",), ("Ελληνικά",),
    ]
    assert set(layout.folders) == {m.folder_path for m in layout.messages}

    found = readpst(path, tmp_path / "out")
    assert set(found) == {m.folder_path for m in layout.messages}
    assert {k: [str(m["subject"]) for m in v] for k, v in found.items()} == {
        ("Inbox",): ["in inbox"], ("Inbox", "2024"): ["in 2024"],
        ("Projekte",): ["in projekte"], ("Projekte", "Überweisung"): ["in überweisung"],
        ("Projekte", "Überweisung", "Ärger"): ["deep"], ("日本語",): ["日本語のメール"],
        ("Ελληνικά",): ["ελληνικό μήνυμα"],
    }
    listed = [line for line in lspst(path) if line.startswith("Folder ")]
    assert sorted(listed) == sorted(
        f'Folder "{name}"' for name in
        ("Inbox", "2024", "Projekte", "Überweisung", "Ärger", "日本語", "Ελληνικά")
    )


def test_message_properties_and_recipients_read_back_exactly(tmp_path: Path) -> None:
    path = tmp_path / "props.pst"
    plain = noted("Ünïcödé subject ✓", "Plain only body\r\n")
    write_pst(path, [Folder("Inbox", [full_message(), plain])], encryption="none")
    check_ndb(path)
    given = full_message().props
    msgs = messages_of(folder_at(open_pst(path), "Inbox"))
    msg = msgs["Quarterly report Q1"]
    assert msg.transport_headers == given[PR_TRANSPORT_MESSAGE_HEADERS]
    assert msg.plain_text_body.decode("utf-8") == given[PR_BODY]
    assert msg.html_body == HTML.encode("utf-8")
    assert msg.rtf_body.rstrip(b"\0") == RTF  # libpff ends the decompressed RTF with a NUL
    assert msg.sender_name == "Alice Sender"
    assert msg.delivery_time == DELIVERED.replace(tzinfo=None)
    assert msg.client_submit_time == SUBMITTED.replace(tzinfo=None)
    assert entry(msg, PR_MESSAGE_FLAGS) == struct.pack("<I", 0x01)
    assert entry(msg, PR_MESSAGE_CLASS) == "IPM.Note".encode("utf-16-le")
    assert entry(msg, PR_SENDER_EMAIL_ADDRESS) == "alice@example.com".encode("utf-16-le")
    assert entry(msg, PR_INTERNET_MESSAGE_ID) == "<q1@example.com>".encode("utf-16-le")
    rows = []
    for rs in msg.recipients.record_sets:
        rows.append((
            (entry(msg, PR_DISPLAY_NAME, rs) or b"").decode("utf-16-le"),
            (entry(msg, PR_EMAIL_ADDRESS, rs) or b"").decode("utf-16-le"),
            struct.unpack("<I", entry(msg, PR_RECIPIENT_TYPE, rs) or b"")[0],
        ))
    assert rows == [(r[PR_DISPLAY_NAME], r[PR_EMAIL_ADDRESS], r[PR_RECIPIENT_TYPE])
                    for r in RECIPIENTS]
    other = msgs["Ünïcödé subject ✓"]
    assert other.plain_text_body == b"Plain only body\r\n"
    assert other.html_body is None and other.transport_headers is None

    found = readpst(path, tmp_path / "out")
    by_subject = {str(m["subject"]): m for m in found[("Inbox",)]}
    assert set(by_subject) == {"Quarterly report Q1", "Ünïcödé subject ✓"}
    first = by_subject["Quarterly report Q1"]
    assert body_of(first, "plain").strip() == given[PR_BODY].replace("\r\n", "\n").strip()
    assert body_of(first, "html").strip() == HTML
    assert str(first["message-id"]) == "<q1@example.com>"
    assert body_of(by_subject["Ünïcödé subject ✓"], "plain").strip() == "Plain only body"


def test_attachments_and_an_embedded_message_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "attachments.pst"
    layout = write_pst(path, [Folder("Inbox", [attachment_message()])])
    check_ndb(path)
    (msg,) = messages_of(folder_at(open_pst(path), "Inbox")).values()
    assert msg.number_of_attachments == len(SIZES) + 1
    for index, (name, size) in enumerate(SIZES.items()):
        att = msg.get_attachment(index)
        assert att.long_filename == name
        assert att.size == size
        assert (att.read_buffer(size) if size else b"") == attachment_data(size, size)
        assert entry(att, PR_ATTACH_MIME_TAG) == "application/octet-stream".encode("utf-16-le")
        assert entry(att, PR_ATTACH_CONTENT_ID) == f"{name}@cid".encode("utf-16-le")
        assert entry(att, PR_ATTACH_METHOD) == struct.pack("<I", 1)
    embedded = msg.get_attachment(len(SIZES))
    assert entry(embedded, PR_ATTACH_METHOD) == struct.pack("<I", 5)
    # pypff gives the embedded message as its node's data: a heap (0xEC) of a PC (0xBC) ...
    node = embedded.read_buffer(embedded.size)
    assert node[2:4] == b"\xec\xbc"
    assert "Inner forwarded".encode("utf-16-le") in node
    # ... and libpff itself opens it as a message with its own attachment.
    subject, datas = libpff_embedded(embedded)
    assert subject == "Inner forwarded"
    assert datas == {0: b"inner attachment " * 700}
    assert len(layout.messages) == 1 and layout.messages[0].pc_blocks

    found = readpst(path, tmp_path / "out")
    (eml,) = found[("Inbox",)]
    got = attachments_of(eml)
    for name, size in SIZES.items():
        if size:
            assert got[name] == attachment_data(size, size), name
        else:
            assert got.get(name, b"") == b""  # libpst may leave out an empty attachment
    (inner_part,) = [p for p in eml.iter_attachments()
                     if p.get_content_type() == "message/rfc822"]
    inner = inner_part.get_content()
    assert str(inner["subject"]) == "Inner forwarded"
    assert body_of(inner, "plain").strip() == "Inner body"
    assert attachments_of(inner) == {"inner.txt": b"inner attachment " * 700}


BOUNDARY_SIZES = [3580, 3581, 8176, 8177, 8176 * 1021, 8176 * 1021 + 1, 9_000_000]


def test_values_at_every_storage_boundary(tmp_path: Path) -> None:
    """Heap (<= 3580), subnode block, XBLOCK (> 8176) and XXBLOCK (> 1021 blocks) values."""
    path = tmp_path / "boundaries.pst"
    atts = [Attachment({PR_ATTACH_LONG_FILENAME: f"{size}.bin"}, data=attachment_data(size, size))
            for size in BOUNDARY_SIZES]
    bodies = {size: "é" * (size // 2) for size in (1790, 1791, 4088, 4089, 60_000)}
    # 40 values of 3,000 bytes: a heap of over 30 blocks, so with an HNBITMAPHDR (block 8)
    many = {((0x6600 + i) << 16) | 0x0102: attachment_data(3000, i) for i in range(40)}
    msgs = [Message({PR_SUBJECT: "sizes", PR_BODY: "x", **many}, attachments=atts)]
    msgs += [noted(f"body {size}", body) for size, body in bodies.items()]
    write_pst(path, [Folder("Inbox", msgs)], encryption="permute")
    facts = check_ndb(path)
    got = messages_of(folder_at(open_pst(path), "Inbox"))
    msg = got["sizes"]
    for index, size in enumerate(BOUNDARY_SIZES):
        att = msg.get_attachment(index)
        assert att.read_buffer(att.size) == attachment_data(size, size), size
    assert all(entry(msg, tag) == value for tag, value in many.items())
    for size, body in bodies.items():
        assert got[f"body {size}"].plain_text_body.decode("utf-8") == body
    blocks = facts["blocks"]
    assert isinstance(blocks, dict)
    internal = [bid for bid in blocks if bid & 2]
    levels = set()
    with open(path, "rb") as fh:
        for bid in internal:
            fh.seek(blocks[bid][0])
            levels.add(fh.read(2))
    assert {b"\x01\x01", b"\x01\x02", b"\x02\x00"} <= levels  # XBLOCK, XXBLOCK, SLBLOCK

    found = readpst(path, tmp_path / "out")
    by_subject = {str(m["subject"]): m for m in found[("Inbox",)]}
    assert attachments_of(by_subject["sizes"]) == {
        f"{size}.bin": attachment_data(size, size) for size in BOUNDARY_SIZES
    }


@pytest.mark.parametrize("encryption", ["none", "permute"])
def test_both_encryptions_read_back(tmp_path: Path, encryption: str) -> None:
    path = tmp_path / f"{encryption}.pst"
    secret = "Unmistakable subject text"
    write_pst(path, [Folder("Inbox", [noted(secret), attachment_message()])],
              encryption=encryption)
    facts = check_ndb(path)
    assert facts["crypt"] == {"none": 0, "permute": 1}[encryption]
    raw = path.read_bytes()
    assert (secret.encode("utf-16-le") in raw) == (encryption == "none")
    msgs = messages_of(folder_at(open_pst(path), "Inbox"))
    assert msgs[secret].plain_text_body == f"Body of {secret}\r\n".encode()
    att = msgs["With attachments"].get_attachment(3)
    assert att.read_buffer(att.size) == attachment_data(3_000_000, 3_000_000)
    found = readpst(path, tmp_path / "out")
    assert {str(m["subject"]) for m in found[("Inbox",)]} == {secret, "With attachments"}


def test_large_tables_and_subnode_trees(tmp_path: Path) -> None:
    """600 recipients (a row index BTH of two levels, a row matrix over several blocks), 400
    attachments (an SIBLOCK), and 1,000 messages in one folder (a large contents table)."""
    path = tmp_path / "tables.pst"
    recipients = [{PR_DISPLAY_NAME: f"R{i}", PR_EMAIL_ADDRESS: f"r{i}@example.org",
                   PR_RECIPIENT_TYPE: 1 + i % 3} for i in range(600)]
    atts = [Attachment({PR_ATTACH_LONG_FILENAME: f"f{i}.txt"}, data=f"data {i};".encode() * i)
            for i in range(400)]
    many = Message({PR_SUBJECT: "many", PR_BODY: "x"}, recipients=recipients, attachments=atts)
    rows = Message({PR_SUBJECT: "rows", PR_BODY: "x"}, attachments=atts[:300])
    bulk = (noted(f"bulk {i}") for i in range(1000))
    write_pst(path, [Folder("Inbox", [many, rows]), Folder("Bulk", bulk)])
    check_ndb(path)
    pst = open_pst(path)
    msgs = messages_of(folder_at(pst, "Inbox"))
    names = [(entry(msgs["many"], PR_DISPLAY_NAME, rs) or b"").decode("utf-16-le")
             for rs in msgs["many"].recipients.record_sets]
    assert names == [f"R{i}" for i in range(600)]
    for msg, count in ((msgs["many"], 400), (msgs["rows"], 300)):
        assert msg.number_of_attachments == count
        for i in range(count):
            att = msg.get_attachment(i)
            assert att.long_filename == f"f{i}.txt"
            assert (att.read_buffer(att.size) if att.size else b"") == f"data {i};".encode() * i
    assert set(messages_of(folder_at(pst, "Bulk"))) == {f"bulk {i}" for i in range(1000)}

    found = readpst(path, tmp_path / "out")
    assert len(found[("Bulk",)]) == 1000
    by_subject = {str(m["subject"]): m for m in found[("Inbox",)]}
    # libpst reads a row matrix over several blocks, but no SIBLOCK: "many" has none there.
    assert attachments_of(by_subject["rows"]) == {
        f"f{i}.txt": f"data {i};".encode() * i for i in range(1, 300)
    }


def test_a_damaged_message_block_breaks_that_message_only(tmp_path: Path) -> None:
    path = tmp_path / "damaged.pst"
    msgs = [Message({PR_SUBJECT: f"message {i}", PR_BODY: f"body {i}\r\n" * 50})
            for i in range(6)]
    layout = write_pst(path, [Folder("Inbox", msgs[:3]), Folder("Other", msgs[3:])])
    assert isinstance(layout, PstLayout)
    assert [m.folder_path for m in layout.messages] == [("Inbox",)] * 3 + [("Other",)] * 3
    facts = check_ndb(path)
    blocks = facts["blocks"]
    assert isinstance(blocks, dict)
    on_disk = {ib for ib, _ in blocks.values()}
    for message in layout.messages:
        assert all(ib in on_disk for ib, _ in message.blocks)
    assert all(page < layout.file_size for page in layout.nbt_pages + layout.bbt_pages)

    victim = layout.messages[4]
    offset, size = victim.pc_blocks[0]
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(random.Random(4).randbytes(size))
    pst = open_pst(path)
    read, broken = set(), []
    for name in ("Inbox", "Other"):
        folder = folder_at(pst, name)
        for i in range(folder.number_of_sub_messages):
            try:
                msg = folder.get_sub_message(i)
                subject = msg.subject
                body = msg.plain_text_body
            except OSError as error:
                broken.append((name, str(error)))
                continue
            assert body == f"body {subject.split()[1]}\r\n".encode() * 50
            read.add(subject)
    assert read == {f"message {i}" for i in range(6)} - {"message 4"}
    assert [name for name, _ in broken] == ["Other"]


STREAM_SCRIPT = """
import os, sys, time
sys.path.insert(0, sys.argv[3])
from tests.pstfile import PR_ATTACH_LONG_FILENAME, PR_BODY, PR_SUBJECT
from tests.pstfile import Attachment, Folder, Message, write_pst

def messages(count):
    for i in range(count):
        data = os.urandom(1_000_000)
        yield Message({PR_SUBJECT: f"bulk {i}", PR_BODY: f"body {i} " * 500},
                      attachments=[Attachment({PR_ATTACH_LONG_FILENAME: f"{i}.bin"}, data=data)])

count = int(sys.argv[2])
start = time.monotonic()
layout = write_pst(sys.argv[1], [Folder("Bulk", messages(count // 2)),
                                 Folder("More", messages(count - count // 2))])
took = time.monotonic() - start
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(layout.file_size, took, int(peak.split()[1]) * 1024)
"""


def test_a_200_mb_pst_streams_from_a_generator(tmp_path: Path) -> None:
    path = tmp_path / "big.pst"
    run = subprocess.run(
        [sys.executable, "-c", STREAM_SCRIPT, str(path), "200", str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    size, took, peak = run.stdout.split()
    file_size, seconds, peak_rss = int(size), float(took), int(peak)
    assert file_size == path.stat().st_size >= 200_000_000
    assert peak_rss < file_size / 4, f"peak RSS {peak_rss} for a {file_size} byte file"
    assert file_size / seconds > 20_000_000, f"{file_size / seconds / 1e6:.1f} MB/s"
    facts = check_ndb(path)
    regions = facts["regions"]
    assert isinstance(regions, int) and regions > 128  # so FMap pages are there and checked
    pst = open_pst(path)
    seen = 0
    for name in ("Bulk", "More"):
        folder = folder_at(pst, name)
        for i in range(folder.number_of_sub_messages):
            msg = folder.get_sub_message(i)
            number = msg.subject.split()[1]
            assert msg.plain_text_body == f"body {number} ".encode() * 500
            att = msg.get_attachment(0)
            assert att.long_filename == f"{number}.bin" and att.size == 1_000_000
            seen += 1
    assert seen == 200
    print(f"200 MB PST: {file_size} bytes in {seconds:.2f} s, peak RSS {peak_rss / 2**20:.1f} MiB")


def test_the_ndb_check_catches_a_wrong_amap(tmp_path: Path) -> None:
    """The NDB check of these tests fails on a file whose AMap is wrong."""
    path = tmp_path / "amap.pst"
    write_pst(path, [Folder("Inbox", [noted("one")])])
    check_ndb(path)
    with open(path, "r+b") as fh:
        fh.seek(AMAP_FIRST + 495)
        fh.write(b"\x01")
    with pytest.raises(AssertionError):
        check_ndb(path)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_pst(tmp_path / "x.pst", [], encryption="cyclic")
    with pytest.raises(ValueError):
        write_pst(tmp_path / "x.pst", [Folder("A", [Message({0x0037001F: "a", 0x0037001E: b"b"})])])
    assert os.path.exists(tmp_path / "x.pst")
