"""Write Unicode PST files ([MS-PST]) so that tests can make the PSTs they import.

The writer covers the three layers of the format:

- NDB: the HEADER, 64-byte aligned blocks with their BLOCKTRAILER (permute-encoded or not),
  XBLOCK/XXBLOCK data trees, SLBLOCK/SIBLOCK subnode trees, the NBT and BBT B-tree pages,
  and the AMap, PMap and FMap pages at their fixed places;
- LTP: heaps on nodes (HN, one or more blocks), B-trees on heaps (BTH), property contexts (PC)
  and table contexts (TC, row matrix in the heap or in a subnode);
- messaging: the message store, the name-to-id map, the root folder, the IPM subtree ("Top of
  Personal Folders"), the search root, the table templates, folders with their hierarchy,
  contents and FAI contents tables, messages with recipient and attachment tables, attachments
  by value (method 1) and embedded messages (method 5).

Blocks are written to the file as they are made, so a PST of any size can be written from a
generator of messages: only the B-tree entries (a few bytes per block and node) and each open
folder's table rows are kept until the end.

Usage::

    write_pst(path, [Folder("Inbox", messages=[Message({PR_SUBJECT: "Hi", PR_BODY: "..."})])])
"""

from __future__ import annotations

import struct
import uuid
import zlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from os import PathLike
from typing import BinaryIO

# ---------------------------------------------------------------------------------------------
# Property types and tags
# ---------------------------------------------------------------------------------------------

PT_SHORT = 0x0002
PT_LONG = 0x0003
PT_FLOAT = 0x0004
PT_DOUBLE = 0x0005
PT_CURRENCY = 0x0006
PT_APPTIME = 0x0007
PT_ERROR = 0x000A
PT_BOOLEAN = 0x000B
PT_OBJECT = 0x000D
PT_I8 = 0x0014
PT_STRING8 = 0x001E
PT_UNICODE = 0x001F
PT_SYSTIME = 0x0040
PT_CLSID = 0x0048
PT_BINARY = 0x0102

PR_IMPORTANCE = 0x00170003
PR_MESSAGE_CLASS = 0x001A001F
PR_SENSITIVITY = 0x00360003
PR_SUBJECT = 0x0037001F
PR_CLIENT_SUBMIT_TIME = 0x00390040
PR_SENT_REPRESENTING_NAME = 0x0042001F
PR_SENT_REPRESENTING_EMAIL_ADDRESS = 0x0065001F
PR_MESSAGE_TO_ME = 0x0057000B
PR_MESSAGE_CC_ME = 0x0058000B
PR_CONVERSATION_TOPIC = 0x0070001F
PR_CONVERSATION_INDEX = 0x00710102
PR_TRANSPORT_MESSAGE_HEADERS = 0x007D001F
PR_SENDER_NAME = 0x0C1A001F
PR_SENDER_EMAIL_ADDRESS = 0x0C1F001F
PR_SENDER_ADDRTYPE = 0x0C1E001F
PR_RECIPIENT_TYPE = 0x0C150003
PR_DISPLAY_BCC = 0x0E02001F
PR_DISPLAY_CC = 0x0E03001F
PR_DISPLAY_TO = 0x0E04001F
PR_MESSAGE_DELIVERY_TIME = 0x0E060040
PR_MESSAGE_FLAGS = 0x0E070003
PR_MESSAGE_SIZE = 0x0E080003
PR_RESPONSIBILITY = 0x0E0F000B
PR_MESSAGE_STATUS = 0x0E170003
PR_ATTACH_SIZE = 0x0E200003
PR_ATTACH_NUM = 0x0E210003
PR_REPL_ITEMID = 0x0E300003
PR_REPL_CHANGENUM = 0x0E330014
PR_REPL_VERSIONHISTORY = 0x0E340102
PR_REPL_FLAGS = 0x0E380003
PR_REPL_COPIEDFROM_VERSIONHISTORY = 0x0E3C0102
PR_REPL_COPIEDFROM_ITEMID = 0x0E3D0102
PR_RECORD_KEY = 0x0FF90102
PR_OBJECT_TYPE = 0x0FFE0003
PR_ENTRYID = 0x0FFF0102
PR_BODY = 0x1000001F
PR_RTF_COMPRESSED = 0x10090102
PR_HTML = 0x10130102
PR_INTERNET_MESSAGE_ID = 0x1035001F
PR_ROWID = 0x30000003
PR_DISPLAY_NAME = 0x3001001F
PR_ADDRTYPE = 0x3002001F
PR_EMAIL_ADDRESS = 0x3003001F
PR_CREATION_TIME = 0x30070040
PR_LAST_MODIFICATION_TIME = 0x30080040
PR_SEARCH_KEY = 0x300B0102
PR_VALID_FOLDER_MASK = 0x35DF0003
PR_IPM_SUBTREE_ENTRYID = 0x35E00102
PR_IPM_WASTEBASKET_ENTRYID = 0x35E30102
PR_FINDER_ENTRYID = 0x35E70102
PR_CONTENT_COUNT = 0x36020003
PR_CONTENT_UNREAD = 0x36030003
PR_SUBFOLDERS = 0x360A000B
PR_CONTAINER_CLASS = 0x3613001F
PR_ATTACH_DATA_BIN = 0x37010102
PR_ATTACH_DATA_OBJ = 0x3701000D
PR_ATTACH_EXTENSION = 0x3703001F
PR_ATTACH_FILENAME = 0x3704001F
PR_ATTACH_METHOD = 0x37050003
PR_ATTACH_LONG_FILENAME = 0x3707001F
PR_RENDERING_POSITION = 0x370B0003
PR_ATTACH_MIME_TAG = 0x370E001F
PR_ATTACH_CONTENT_ID = 0x3712001F
PR_ATTACH_FLAGS = 0x37140003
PR_DISPLAY_TYPE = 0x39000003
PR_SMTP_ADDRESS = 0x39FE001F
PR_INTERNET_CPID = 0x3FDE0003
PR_SECURE_SUBMIT_FLAGS = 0x65C60003
PR_PST_HIDDEN_COUNT = 0x66350003
PR_PST_HIDDEN_UNREAD = 0x66360003
PR_LTP_ROW_ID = 0x67F20003
PR_LTP_ROW_VER = 0x67F30003
PR_PST_PASSWORD = 0x67FF0003
PR_NAMEID_BUCKET_COUNT = 0x00010003
PR_NAMEID_STREAM_GUID = 0x00020102
PR_NAMEID_STREAM_ENTRY = 0x00030102
PR_NAMEID_STREAM_STRING = 0x00040102

MAPI_TO, MAPI_CC, MAPI_BCC = 1, 2, 3
ATTACH_BY_VALUE, ATTACH_EMBEDDED_MSG = 1, 5
MSGFLAG_READ, MSGFLAG_UNSENT, MSGFLAG_HASATTACH = 0x01, 0x08, 0x10

# NID types and the special NIDs
NID_TYPE_HID = 0x00
NID_TYPE_INTERNAL = 0x01
NID_TYPE_NORMAL_FOLDER = 0x02
NID_TYPE_SEARCH_FOLDER = 0x03
NID_TYPE_NORMAL_MESSAGE = 0x04
NID_TYPE_ATTACHMENT = 0x05
NID_TYPE_HIERARCHY_TABLE = 0x0D
NID_TYPE_CONTENTS_TABLE = 0x0E
NID_TYPE_ASSOC_CONTENTS_TABLE = 0x0F
NID_TYPE_LTP = 0x1F

NID_MESSAGE_STORE = 0x21
NID_NAME_TO_ID_MAP = 0x61
NID_ROOT_FOLDER = 0x122
NID_HIERARCHY_TABLE_TEMPLATE = 0x60D
NID_CONTENTS_TABLE_TEMPLATE = 0x60E
NID_ASSOC_CONTENTS_TABLE_TEMPLATE = 0x60F
NID_SEARCH_CONTENTS_TABLE_TEMPLATE = 0x610
NID_ATTACHMENT_TABLE = 0x671
NID_RECIPIENT_TABLE = 0x692

NDB_CRYPT_NONE, NDB_CRYPT_PERMUTE = 0x00, 0x01

# Sizes of the NDB and LTP structures (Unicode PST)
PAGE_SIZE = 512
AMAP_FIRST = 0x4400
AMAP_SPAN = 496 * 8 * 64  # bytes covered by one AMap page: 253,952
PMAP_EVERY = 8  # a PMap page in every 8th AMap region
FMAP_FIRST_REGION, FMAP_EVERY = 128, 496
BLOCK_MAX = 8192
BLOCK_TRAILER = 16
BLOCK_DATA_MAX = BLOCK_MAX - BLOCK_TRAILER  # 8176
XBLOCK_MAX = (BLOCK_DATA_MAX - 8) // 8  # 1021 BIDs in an XBLOCK / XXBLOCK
SLBLOCK_MAX = (BLOCK_DATA_MAX - 8) // 24  # 340 SLENTRYs
SIBLOCK_MAX = (BLOCK_DATA_MAX - 8) // 16  # 510 SIENTRYs
HEAP_ALLOC_MAX = 3580
BT_ENTRIES_SIZE = 488

PTYPE_BBT, PTYPE_NBT, PTYPE_FMAP, PTYPE_PMAP, PTYPE_AMAP = 0x80, 0x81, 0x82, 0x83, 0x84

# The permutation of NDB_CRYPT_PERMUTE ([MS-PST] 5.1): this table decodes (mpbbI); the encoder
# is its inverse (mpbbR).
_PERMUTE_DECODE = bytes.fromhex(
    "47f1b4e60b6a7248854e9eebe2f89453e0bba002e85a09abdbe3bac67cc310dd"
    "39059630f53760828cc9134a6b1df3fb8f2697ca911701c4322d6e3195ffd923"
    "d1005e79dc443b1a28c5615720903d83b943be67d2464276c06d5b7eb20f1629"
    "3ca903540dda5ddff6b7c762cd8d06d3695c86d614f7a56675acb1e94521700c"
    "879f74a4224c6fbf1f56aa2eb3783350b0a392bccf191ca763cb1e4d3e4b1b9b"
    "4fe7f0eead3ab55904ea40552551e57a893868527bfc27aed7bdfa07f4cc8e5f"
    "ef359c842b15d5773449b6120a7f7188fd9d18417d93d8582ccefe24afdeb836"
    "c8a180a69998a82f0e816573e4c2a28ad4e111d0088b2af2ed9a643fc16cf9ec"
)
_PERMUTE_ENCODE = bytes(_PERMUTE_DECODE.index(i) for i in range(256))

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def crc32(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """The CRC of [MS-PST] 5.3: the table of CRC-32, no inversion on the way in or out."""
    return zlib.crc32(data, crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def filetime(value: datetime) -> int:
    """A datetime as a FILETIME (100 ns ticks since 1601-01-01 UTC); naive means UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _FILETIME_EPOCH
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def compress_rtf(raw: bytes) -> bytes:
    """RTF in the compressed form of [MS-OXRTFCP] (LZFu), as PR_RTF_COMPRESSED holds it.

    The content is coded as literals only, ended by the reference to the dictionary's write
    position that marks the end; any LZFu reader decompresses it.
    """
    out = bytearray()
    position = 207  # the initial dictionary's length: the first write position
    for start in range(0, len(raw) + 1, 8):
        group = raw[start : start + 8]
        control = 0
        items = bytearray(group)
        if len(group) < 8:
            end = position + len(group)
            control = 1 << len(group)
            items += struct.pack(">H", ((end % 4096) << 4) & 0xFFFF)
        out.append(control)
        out += items
        position += len(group)
    header = struct.pack("<III", len(out) + 12, len(raw), 0x75465A4C)
    return header + struct.pack("<I", crc32(out)) + bytes(out)


def _signature(ib: int, bid: int) -> int:
    """wSig of a block or page: [MS-PST] 5.5 ComputeSig."""
    value = (ib ^ bid) & 0xFFFFFFFFFFFFFFFF
    return ((value >> 16) ^ value) & 0xFFFF


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


# ---------------------------------------------------------------------------------------------
# The objects a caller gives
# ---------------------------------------------------------------------------------------------


@dataclass
class Attachment:
    """An attachment: by value (``data``), an embedded message (``embedded``) or neither.

    ``props`` maps full 32-bit property tags to values. ``data`` becomes PR_ATTACH_DATA_BIN
    (method 1); ``embedded`` becomes PR_ATTACH_DATA_OBJ (method 5), a subnode holding the
    message's own property context, recipients and attachments.
    """

    props: dict[int, object]
    data: bytes | None = None
    embedded: Message | None = None


@dataclass
class Message:
    """A message: its properties, recipient rows (tag -> value each) and attachments."""

    props: dict[int, object]
    recipients: list[dict[int, object]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class Folder:
    """A folder; ``messages`` may be any iterable (a generator is consumed once)."""

    name: str
    messages: Iterable[Message] = field(default_factory=list)
    folders: list[Folder] = field(default_factory=list)


@dataclass
class MessageLayout:
    """Where one message landed: its folder, NID and blocks as (file offset, size on disk).

    ``pc_blocks`` hold the message's property context (its heap blocks, and the XBLOCK when
    the heap spans several blocks); ``subnode_blocks`` hold everything under it: the subnode
    tree, the recipient and attachment tables, the attachments and large values.
    """

    folder_path: tuple[str, ...]
    nid: int
    pc_blocks: list[tuple[int, int]]
    subnode_blocks: list[tuple[int, int]]

    @property
    def blocks(self) -> list[tuple[int, int]]:
        return self.pc_blocks + self.subnode_blocks


@dataclass
class PstLayout:
    """What ``write_pst`` wrote and where: enough for a test to damage the file on purpose."""

    path: str
    file_size: int
    encryption: str
    messages: list[MessageLayout]
    nbt_root: int
    bbt_root: int
    nbt_pages: list[int]
    bbt_pages: list[int]
    amap_pages: list[int]
    folders: dict[tuple[str, ...], int]  # folder path under the IPM subtree -> NID


@dataclass(frozen=True)
class _ObjectRef:
    """The value of a PtypObject property: a subnode NID and the object's size."""

    nid: int
    size: int


# ---------------------------------------------------------------------------------------------
# NDB layer
# ---------------------------------------------------------------------------------------------


def _region_reserved(region: int) -> int:
    """Bytes at the start of an AMap region taken by the AMap, PMap and FMap pages."""
    size = PAGE_SIZE
    if region % PMAP_EVERY == 0:
        size += PAGE_SIZE
    if region >= FMAP_FIRST_REGION and (region - FMAP_FIRST_REGION) % FMAP_EVERY == 0:
        size += PAGE_SIZE
    return size


def _set_bits(bitmap: bytearray, first: int, count: int) -> None:
    """Set ``count`` bits from bit ``first`` on, most significant bit of each byte first."""
    end = first + count
    while first < end and first & 7:
        bitmap[first >> 3] |= 0x80 >> (first & 7)
        first += 1
    whole = (end - first) >> 3
    if whole:
        bitmap[first >> 3 : (first >> 3) + whole] = b"\xff" * whole
        first += whole << 3
    while first < end:
        bitmap[first >> 3] |= 0x80 >> (first & 7)
        first += 1


def _longest_free_run(bitmap: bytes) -> int:
    best = run = 0
    for byte in bitmap:
        if byte == 0:
            run += 8
            best = max(best, run)
            continue
        for bit in range(8):
            if byte & (0x80 >> bit):
                run = 0
            else:
                run += 1
                best = max(best, run)
    return best


class _Ndb:
    """Allocates space, writes blocks and pages, and keeps the BBT entries."""

    def __init__(self, fh: BinaryIO, crypt: int) -> None:
        self.fh = fh
        self.crypt = crypt
        self.written = 0
        self.pos = AMAP_FIRST
        self.maps: list[bytearray] = []
        self.next_bid = 1
        self.next_page_bid = 1
        self.bbt_bid = array("Q")
        self.bbt_ib = array("Q")
        self.bbt_cb = array("H")
        self.trace: list[tuple[int, int]] | None = None
        self._emit(0, bytes(AMAP_FIRST))

    # -- space ------------------------------------------------------------------------------

    def _new_region(self) -> None:
        region = len(self.maps)
        bitmap = bytearray(496)
        _set_bits(bitmap, 0, _region_reserved(region) // 64)
        self.maps.append(bitmap)

    def _reserve(self, size: int, align: int) -> int:
        pos = _align(self.pos, align)
        while True:
            region = (pos - AMAP_FIRST) // AMAP_SPAN
            while region >= len(self.maps):
                self._new_region()
            start = AMAP_FIRST + region * AMAP_SPAN
            pos = max(pos, start + _region_reserved(region))
            if pos + size <= start + AMAP_SPAN:
                break
            pos = start + AMAP_SPAN
        _set_bits(self.maps[region], (pos - start) // 64, size // 64)
        self.pos = pos + size
        return pos

    def _emit(self, ib: int, data: bytes | bytearray) -> None:
        if ib < self.written:
            raise AssertionError("blocks are written in file order")
        gap = ib - self.written
        if gap:
            self.fh.write(bytes(gap))
        self.fh.write(data)
        self.written = ib + len(data)

    # -- blocks -----------------------------------------------------------------------------

    def write_block(self, data: bytes | bytearray | memoryview, internal: bool = False) -> int:
        """Write one block; returns its BID."""
        cb = len(data)
        if cb > BLOCK_DATA_MAX:
            raise ValueError(f"block of {cb} bytes")
        bid = (self.next_bid << 2) | (2 if internal else 0)
        self.next_bid += 1
        total = _align(cb + BLOCK_TRAILER, 64)
        ib = self._reserve(total, 64)
        raw = bytes(data)
        if not internal and self.crypt == NDB_CRYPT_PERMUTE:
            raw = raw.translate(_PERMUTE_ENCODE)
        trailer = struct.pack("<HHIQ", cb, _signature(ib, bid), crc32(raw), bid)
        self._emit(ib, raw + bytes(total - cb - BLOCK_TRAILER) + trailer)
        self.bbt_bid.append(bid)
        self.bbt_ib.append(ib)
        self.bbt_cb.append(cb)
        if self.trace is not None:
            self.trace.append((ib, total))
        return bid

    def write_chunks(self, chunks: Iterable[bytes | bytearray | memoryview]) -> int:
        """Write the chunks as data blocks, and an XBLOCK/XXBLOCK over them if several."""
        bids: list[int] = []
        sizes: list[int] = []
        for chunk in chunks:
            bids.append(self.write_block(chunk))
            sizes.append(len(chunk))
        if not bids:
            return self.write_block(b"")
        if len(bids) == 1:
            return bids[0]
        if len(bids) <= XBLOCK_MAX:
            return self._xblock(1, bids, sum(sizes))
        if len(bids) > XBLOCK_MAX * XBLOCK_MAX:
            raise ValueError("value too large for an XXBLOCK tree")
        xbids = []
        for i in range(0, len(bids), XBLOCK_MAX):
            xbids.append(self._xblock(1, bids[i : i + XBLOCK_MAX], sum(sizes[i : i + XBLOCK_MAX])))
        return self._xblock(2, xbids, sum(sizes))

    def _xblock(self, level: int, bids: list[int], total: int) -> int:
        data = struct.pack("<BBHI", 0x01, level, len(bids), total)
        data += struct.pack(f"<{len(bids)}Q", *bids)
        return self.write_block(data, internal=True)

    def write_data(self, data: bytes | bytearray | memoryview) -> int:
        """Write a value of any size as a data tree; returns the root BID."""
        view = memoryview(data)
        return self.write_chunks(
            view[i : i + BLOCK_DATA_MAX] for i in range(0, max(len(view), 1), BLOCK_DATA_MAX)
        )

    def write_subnodes(self, entries: list[tuple[int, int, int]]) -> int:
        """Write a subnode tree of (nid, bidData, bidSub) entries; returns its BID (0: none)."""
        if not entries:
            return 0
        entries = sorted(entries)
        if len({nid for nid, _, _ in entries}) != len(entries):
            raise ValueError("duplicate subnode NID")
        leaves = []
        for i in range(0, len(entries), SLBLOCK_MAX):
            part = entries[i : i + SLBLOCK_MAX]
            data = struct.pack("<BBHI", 0x02, 0, len(part), 0)
            data += b"".join(struct.pack("<QQQ", *entry) for entry in part)
            leaves.append((part[0][0], self.write_block(data, internal=True)))
        if len(leaves) == 1:
            return leaves[0][1]
        if len(leaves) > SIBLOCK_MAX:
            raise ValueError("too many subnodes")
        data = struct.pack("<BBHI", 0x02, 1, len(leaves), 0)
        data += b"".join(struct.pack("<QQ", nid, bid) for nid, bid in leaves)
        return self.write_block(data, internal=True)

    # -- pages ------------------------------------------------------------------------------

    def _page(self, payload: bytes, ptype: int, ib: int, bid: int, signed: bool) -> bytes:
        if len(payload) != 496:
            raise AssertionError("page payload must be 496 bytes")
        sig = _signature(ib, bid) if signed else 0
        return payload + struct.pack("<BBHIQ", ptype, ptype, sig, crc32(payload), bid)

    def write_btree(
        self, entries: list[bytes], keys: list[int], cb_ent: int, ptype: int
    ) -> tuple[int, int, list[int]]:
        """Write the pages of a B-tree over sorted leaf entries; returns (bid, ib, pages)."""
        offsets: list[int] = []
        level = 0
        while True:
            per_page = BT_ENTRIES_SIZE // cb_ent
            refs: list[tuple[int, int, int]] = []
            for i in range(0, max(len(entries), 1), per_page):
                part = entries[i : i + per_page]
                body = b"".join(part).ljust(BT_ENTRIES_SIZE, b"\0")
                body += struct.pack("<BBBBI", len(part), per_page, cb_ent, level, 0)
                ib = self._reserve(PAGE_SIZE, PAGE_SIZE)
                bid = self.next_page_bid << 2
                self.next_page_bid += 1
                self._emit(ib, self._page(body, ptype, ib, bid, signed=True))
                offsets.append(ib)
                refs.append((keys[i] if keys else 0, bid, ib))
            if len(refs) == 1:
                return refs[0][1], refs[0][2], offsets
            entries = [struct.pack("<QQQ", *ref) for ref in refs]
            keys = [ref[0] for ref in refs]
            cb_ent = 24
            level += 1

    def finish(
        self, nbt: list[tuple[int, int, int, int]], rgnid: list[int]
    ) -> tuple[int, int, list[int], list[int], list[int]]:
        """Write the NBT, the BBT, the allocation pages and the HEADER."""
        nbt = sorted(nbt)
        if len({entry[0] for entry in nbt}) != len(nbt):
            raise ValueError("duplicate NID")
        nbt_entries = [struct.pack("<QQQII", nid, data, sub, parent, 0) for nid, data, sub, parent
                       in nbt]
        nbt_bid, nbt_ib, nbt_pages = self.write_btree(
            nbt_entries, [entry[0] for entry in nbt], 32, PTYPE_NBT
        )
        # The BBT pages are not in the BBT, so it can be written last.
        order = sorted(range(len(self.bbt_bid)), key=self.bbt_bid.__getitem__)
        bbt_entries = [
            struct.pack("<QQHHI", self.bbt_bid[i], self.bbt_ib[i], self.bbt_cb[i], 1, 0)
            for i in order
        ]
        bbt_bid, bbt_ib, bbt_pages = self.write_btree(
            bbt_entries, [self.bbt_bid[i] for i in order], 24, PTYPE_BBT
        )
        # The file ends with the last AMap region.
        eof = AMAP_FIRST + len(self.maps) * AMAP_SPAN
        self._emit(eof, b"")
        amap_pages = []
        for region, bitmap in enumerate(self.maps):
            start = AMAP_FIRST + region * AMAP_SPAN
            amap_pages.append(start)
            self.fh.seek(start)
            self.fh.write(self._page(bytes(bitmap), PTYPE_AMAP, start, start, signed=False))
            at = start + PAGE_SIZE
            if region % PMAP_EVERY == 0:
                self.fh.seek(at)
                self.fh.write(self._page(b"\xff" * 496, PTYPE_PMAP, at, at, signed=False))
                at += PAGE_SIZE
            if region >= FMAP_FIRST_REGION and (region - FMAP_FIRST_REGION) % FMAP_EVERY == 0:
                covered = self.maps[region : region + 496]
                body = bytes(min(_longest_free_run(m), 255) for m in covered).ljust(496, b"\0")
                self.fh.seek(at)
                self.fh.write(self._page(body, PTYPE_FMAP, at, at, signed=False))
        free = sum(496 * 8 - sum(bin(b).count("1") for b in m) for m in self.maps) * 64

        header = bytearray(564)
        header[0:4] = b"!BDN"
        struct.pack_into("<2sHHBBII", header, 8, b"SM", 23, 19, 1, 1, 0, 0)
        struct.pack_into("<QQI", header, 24, 0, self.next_page_bid << 2, 1)
        struct.pack_into("<32I", header, 44, *rgnid)
        struct.pack_into(
            "<IQQQQQQQQBBH", header, 180,
            0, eof, amap_pages[-1], free, 0, nbt_bid, nbt_ib, bbt_bid, bbt_ib, 0x02, 0, 0,
        )
        header[256:512] = b"\xff" * 256  # rgbFM and rgbFP: deprecated, all 0xFF
        header[512] = 0x80
        header[513] = self.crypt
        struct.pack_into("<Q", header, 516, self.next_bid << 2)
        struct.pack_into("<I", header, 4, crc32(header[8 : 8 + 471]))
        struct.pack_into("<I", header, 524, crc32(header[8 : 8 + 516]))
        self.fh.seek(0)
        self.fh.write(header)
        self.fh.seek(0, 2)
        return nbt_ib, bbt_ib, nbt_pages, bbt_pages, amap_pages


# ---------------------------------------------------------------------------------------------
# LTP layer
# ---------------------------------------------------------------------------------------------

_FILL_LEVELS = (3584, 2560, 2048, 1792, 1536, 1280, 1024, 768, 512, 256, 128, 64, 32, 16, 8)


def _fill_level(free: int) -> int:
    for level, threshold in enumerate(_FILL_LEVELS):
        if free >= threshold:
            return level
    return 15


def _pack_fill(levels: list[int], count: int) -> bytes:
    levels = (levels + [0] * count)[:count]
    return bytes(levels[i] | (levels[i + 1] << 4) for i in range(0, count, 2))


class _Heap:
    """A heap on a node (HN): allocations packed into blocks, each with its HNPAGEMAP."""

    def __init__(self, client_sig: int) -> None:
        self.client_sig = client_sig
        self.blocks: list[list[bytes]] = [[]]
        self.used = [12]
        self.user_root = 0

    @staticmethod
    def _header_size(index: int) -> int:
        if index == 0:
            return 12
        return 66 if index % 128 == 8 else 2

    def alloc(self, data: bytes) -> int:
        if len(data) > HEAP_ALLOC_MAX:
            raise ValueError(f"heap allocation of {len(data)} bytes")
        index = len(self.blocks) - 1
        count = len(self.blocks[index])
        # the HNPAGEMAP after the allocations: 4 bytes + 2 per allocation + 2, and 1 to align
        if (
            self.used[index] + len(data) + 1 + 4 + 2 * (count + 2) > BLOCK_DATA_MAX
            or count >= 2047
        ):
            self.blocks.append([])
            index += 1
            self.used.append(self._header_size(index))
            count = 0
        self.blocks[index].append(data)
        self.used[index] += len(data)
        return (index << 16) | ((count + 1) << 5)

    def set(self, hid: int, data: bytes) -> None:
        index, slot = hid >> 16, (hid >> 5) & 0x7FF
        if len(self.blocks[index][slot - 1]) != len(data):
            raise AssertionError("a heap item keeps its size")
        self.blocks[index][slot - 1] = data

    def build(self) -> list[bytes]:
        bodies = []
        for index, allocs in enumerate(self.blocks):
            offsets = [self._header_size(index)]
            for data in allocs:
                offsets.append(offsets[-1] + len(data))
            ib_map = _align(offsets[-1], 2)
            page_map = struct.pack(f"<HH{len(offsets)}H", len(allocs), 0, *offsets)
            bodies.append((ib_map, b"".join(allocs), page_map))
        sizes = [ib_map + len(page_map) for ib_map, _, page_map in bodies]
        levels = [_fill_level(BLOCK_DATA_MAX - size) for size in sizes]
        out = []
        for index, (ib_map, body, page_map) in enumerate(bodies):
            if index == 0:
                head = struct.pack("<HBBI", ib_map, 0xEC, self.client_sig, self.user_root)
                head += _pack_fill(levels[0:8], 8)
            elif index % 128 == 8:
                head = struct.pack("<H", ib_map) + _pack_fill(levels[index : index + 128], 128)
            else:
                head = struct.pack("<H", ib_map)
            block = head + body
            out.append(block + bytes(ib_map - len(block)) + page_map)
        return out


def _bth(
    heap: _Heap, cb_key: int, cb_ent: int, records: list[tuple[bytes, bytes]], header: int
) -> None:
    """Fill the BTH whose header was allocated at ``header`` with sorted records."""
    root, levels = 0, 0
    items = records
    width = cb_key + cb_ent
    while items:
        per = HEAP_ALLOC_MAX // width
        refs = []
        for i in range(0, len(items), per):
            part = items[i : i + per]
            hid = heap.alloc(b"".join(key + value for key, value in part))
            refs.append((part[0][0], struct.pack("<I", hid)))
        if len(refs) == 1:
            root = struct.unpack("<I", refs[0][1])[0]
            break
        items = refs
        width = cb_key + 4
        levels += 1
    heap.set(header, struct.pack("<BBBBI", 0xB5, cb_key, cb_ent, levels, root))


_INLINE_PC = {PT_SHORT, PT_LONG, PT_FLOAT, PT_ERROR, PT_BOOLEAN}
_TC_CELL_SIZE = {
    PT_SHORT: 2, PT_LONG: 4, PT_FLOAT: 4, PT_ERROR: 4, PT_BOOLEAN: 1,
    PT_DOUBLE: 8, PT_CURRENCY: 8, PT_APPTIME: 8, PT_I8: 8, PT_SYSTIME: 8,
}


def _encode(ptype: int, value: object) -> bytes:
    """A property value as stored on disk."""
    if ptype == PT_UNICODE:
        return str(value).encode("utf-16-le")
    if ptype == PT_STRING8:
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]
    if ptype == PT_BINARY:
        return bytes(value)  # type: ignore[arg-type]
    if ptype == PT_BOOLEAN:
        return b"\x01" if value else b"\x00"
    if ptype in (PT_LONG, PT_ERROR):
        return struct.pack("<i" if int(value) < 0 else "<I", int(value))  # type: ignore[call-overload]
    if ptype == PT_SHORT:
        return struct.pack("<h" if int(value) < 0 else "<H", int(value))  # type: ignore[call-overload]
    if ptype == PT_FLOAT:
        return struct.pack("<f", float(value))  # type: ignore[arg-type]
    if ptype in (PT_DOUBLE, PT_APPTIME):
        return struct.pack("<d", float(value))  # type: ignore[arg-type]
    if ptype in (PT_I8, PT_CURRENCY):
        return struct.pack("<q" if int(value) < 0 else "<Q", int(value))  # type: ignore[call-overload]
    if ptype == PT_SYSTIME:
        ticks = filetime(value) if isinstance(value, datetime) else int(value)  # type: ignore[call-overload]
        return struct.pack("<Q", ticks)
    if ptype == PT_CLSID:
        return value.bytes_le if isinstance(value, uuid.UUID) else bytes(value)  # type: ignore[arg-type]
    if ptype == PT_OBJECT:
        if not isinstance(value, _ObjectRef):
            raise ValueError("PtypObject values are made by the writer (embedded messages)")
        return struct.pack("<II", value.nid, value.size)
    raise ValueError(f"unsupported property type 0x{ptype:04X}")


class _Node:
    """The subnodes of one node, as they are written."""

    def __init__(self, ndb: _Ndb) -> None:
        self.ndb = ndb
        self.subnodes: list[tuple[int, int, int]] = []
        self.next_index: dict[int, int] = {}

    def new_nid(self, nid_type: int) -> int:
        index = self.next_index.get(nid_type, 0x400)
        self.next_index[nid_type] = index + 1
        return (index << 5) | nid_type

    def add(self, nid: int, bid_data: int, bid_sub: int = 0) -> None:
        self.subnodes.append((nid, bid_data, bid_sub))

    def store_value(self, data: bytes) -> int:
        nid = self.new_nid(NID_TYPE_LTP)
        self.add(nid, self.ndb.write_data(data))
        return nid

    def store_chunks(self, chunks: list[bytes]) -> int:
        nid = self.new_nid(NID_TYPE_LTP)
        self.add(nid, self.ndb.write_chunks(chunks))
        return nid

    def finish(self) -> int:
        return self.ndb.write_subnodes(self.subnodes)


def _build_pc(node: _Node, props: dict[int, object]) -> list[bytes]:
    """A property context: the heap blocks; values over the heap limit go to subnodes."""
    heap = _Heap(0xBC)
    header = heap.alloc(bytes(8))
    records = []
    seen: set[int] = set()
    for tag in sorted(props, key=lambda t: (t >> 16, t & 0xFFFF)):
        pid, ptype = tag >> 16, tag & 0xFFFF
        if pid in seen:
            raise ValueError(f"two types for property 0x{pid:04X}")
        seen.add(pid)
        value = props[tag]
        if value is None:
            continue
        data = _encode(ptype, value)
        if ptype in _INLINE_PC:
            hnid = int.from_bytes(data.ljust(4, b"\0"), "little")
        elif len(data) <= HEAP_ALLOC_MAX:
            hnid = heap.alloc(data)
        else:
            hnid = node.store_value(data)
        records.append((struct.pack("<H", pid), struct.pack("<HI", ptype, hnid)))
    _bth(heap, 2, 6, records, header)
    heap.user_root = header
    return heap.build()


def _build_tc(node: _Node, columns: Iterable[int], rows: list[tuple[int, dict[int, object]]]
              ) -> list[bytes]:
    """A table context over (row id, {tag: value}) rows; returns the heap blocks."""
    tags = set(columns) | {PR_LTP_ROW_ID, PR_LTP_ROW_VER}
    for _, values in rows:
        tags.update(values)
    by_id: dict[int, int] = {}
    for tag in tags:
        if by_id.setdefault(tag >> 16, tag) != tag:
            raise ValueError(f"two types for column 0x{tag >> 16:04X}")

    def cell_size(tag: int) -> int:
        return _TC_CELL_SIZE.get(tag & 0xFFFF, 4)

    rest = sorted(tags - {PR_LTP_ROW_ID, PR_LTP_ROW_VER})
    order = [PR_LTP_ROW_ID, PR_LTP_ROW_VER]
    for size in (8, 4, 2, 1):
        order += [tag for tag in rest if cell_size(tag) == size]
    layout: dict[int, tuple[int, int, int]] = {}
    offset = 0
    ends = {}
    for bit, tag in enumerate(order):
        size = cell_size(tag)
        layout[tag] = (offset, size, bit)
        offset += size
        ends[size] = offset
    tci_4b = max(ends.get(8, 0), ends.get(4, 0))
    tci_2b = ends.get(2, tci_4b)
    tci_1b = ends.get(1, tci_2b)
    ceb = (len(order) + 7) // 8
    row_size = tci_1b + ceb

    heap = _Heap(0x7C)
    tcinfo = heap.alloc(bytes(22 + 8 * len(order)))
    bth_header = heap.alloc(bytes(8))
    matrix = []
    index_records = []
    for row_index, (row_id, values) in enumerate(rows):
        row = bytearray(row_size)
        cells = dict(values)
        cells[PR_LTP_ROW_ID] = row_id
        cells.setdefault(PR_LTP_ROW_VER, 0)
        for tag, value in cells.items():
            if value is None:
                continue
            ib, size, bit = layout[tag]
            ptype = tag & 0xFFFF
            data = _encode(ptype, value)
            if ptype not in _TC_CELL_SIZE:
                if len(data) <= HEAP_ALLOC_MAX:
                    hnid = heap.alloc(data)
                else:
                    hnid = node.store_value(data)
                data = struct.pack("<I", hnid)
            row[ib : ib + size] = data
            row[tci_1b + bit // 8] |= 0x80 >> (bit % 8)
        matrix.append(bytes(row))
        index_records.append((row_id, row_index))
    if not matrix:
        hnid_rows = 0
    elif row_size * len(matrix) <= HEAP_ALLOC_MAX:
        hnid_rows = heap.alloc(b"".join(matrix))
    else:
        # Rows do not span blocks: each block but the last is filled up to 8176 bytes.
        per_block = BLOCK_DATA_MAX // row_size
        chunks = [b"".join(matrix[i : i + per_block]) for i in range(0, len(matrix), per_block)]
        chunks[:-1] = [chunk.ljust(BLOCK_DATA_MAX, b"\0") for chunk in chunks[:-1]]
        hnid_rows = node.store_chunks(chunks)
    index_records.sort()
    _bth(heap, 4, 4, [(struct.pack("<I", key), struct.pack("<I", value))
                      for key, value in index_records], bth_header)
    info = struct.pack(
        "<BB4HIII", 0x7C, len(order), tci_4b, tci_2b, tci_1b, row_size, bth_header, hnid_rows, 0
    )
    for tag in sorted(order):
        ib, size, bit = layout[tag]
        info += struct.pack("<IHBB", tag, ib, size, bit)
    heap.set(tcinfo, info)
    heap.user_root = tcinfo
    return heap.build()


# ---------------------------------------------------------------------------------------------
# Messaging layer
# ---------------------------------------------------------------------------------------------

HIERARCHY_COLUMNS = (
    PR_REPL_ITEMID, PR_REPL_CHANGENUM, PR_REPL_VERSIONHISTORY, PR_REPL_FLAGS, PR_DISPLAY_NAME,
    PR_CONTENT_COUNT, PR_CONTENT_UNREAD, PR_SUBFOLDERS, PR_CONTAINER_CLASS, PR_PST_HIDDEN_COUNT,
    PR_PST_HIDDEN_UNREAD,
)
CONTENTS_COLUMNS = (
    PR_IMPORTANCE, PR_MESSAGE_CLASS, PR_SENSITIVITY, PR_SUBJECT, PR_CLIENT_SUBMIT_TIME,
    PR_SENT_REPRESENTING_NAME, PR_MESSAGE_TO_ME, PR_MESSAGE_CC_ME, PR_CONVERSATION_TOPIC,
    PR_CONVERSATION_INDEX, PR_DISPLAY_CC, PR_DISPLAY_TO, PR_MESSAGE_DELIVERY_TIME,
    PR_MESSAGE_FLAGS, PR_MESSAGE_SIZE, PR_MESSAGE_STATUS, PR_REPL_ITEMID, PR_REPL_CHANGENUM,
    PR_REPL_VERSIONHISTORY, PR_REPL_FLAGS, PR_REPL_COPIEDFROM_VERSIONHISTORY,
    PR_REPL_COPIEDFROM_ITEMID, PR_LAST_MODIFICATION_TIME, PR_SECURE_SUBMIT_FLAGS,
)
ASSOC_CONTENTS_COLUMNS = (
    PR_MESSAGE_CLASS, PR_MESSAGE_FLAGS, PR_MESSAGE_STATUS, PR_DISPLAY_NAME, PR_MESSAGE_SIZE,
    PR_LAST_MODIFICATION_TIME,
)
RECIPIENT_COLUMNS = (
    PR_RECIPIENT_TYPE, PR_RESPONSIBILITY, PR_RECORD_KEY, PR_OBJECT_TYPE, PR_ENTRYID,
    PR_DISPLAY_NAME, PR_ADDRTYPE, PR_EMAIL_ADDRESS, PR_SEARCH_KEY, PR_DISPLAY_TYPE, PR_ROWID,
)
ATTACHMENT_COLUMNS = (
    PR_ATTACH_SIZE, PR_ATTACH_FILENAME, PR_ATTACH_METHOD, PR_RENDERING_POSITION,
    PR_ATTACH_LONG_FILENAME, PR_ATTACH_MIME_TAG,
)

# Initial next-NID index of each NID type ([MS-PST] 2.2.2.6, rgnid)
_RGNID_START = {NID_TYPE_SEARCH_FOLDER: 0x4000, NID_TYPE_NORMAL_MESSAGE: 0x10000, 0x08: 0x8000}


# The name-to-id map holds two named properties, one by number and one by name ([MS-PST]
# 2.4.7): PidLidReminderDelta in PSETID_Common (the first GUID of the GUID stream, wGuid 3)
# and "Keywords" in PS_PUBLIC_STRINGS (wGuid 2); NAMEID is (dwPropertyID, wGuid << 1 | N, index).
_PSETID_COMMON = uuid.UUID("00062008-0000-0000-c000-000000000046")
_NAMEID_STRINGS = struct.pack("<I", 16) + "Keywords".encode("utf-16-le")
_NAMEIDS = ((0x8501, 3 << 1, 0), (0, (2 << 1) | 1, 1))


def _value_size(value: object) -> int:
    if isinstance(value, str):
        return 2 * len(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    return 8


class _Writer:
    def __init__(self, fh: BinaryIO, crypt: int) -> None:
        self.ndb = _Ndb(fh, crypt)
        self.nbt: list[tuple[int, int, int, int]] = []
        self.next_index: dict[int, int] = {
            NID_TYPE_NORMAL_FOLDER: 0x401, NID_TYPE_NORMAL_MESSAGE: 0x10001,
        }
        self.messages: list[MessageLayout] = []
        self.folders: dict[tuple[str, ...], int] = {}
        self.store_uid = uuid.uuid4().bytes

    def new_nid(self, nid_type: int) -> int:
        index = self.next_index.get(nid_type, 0x400)
        self.next_index[nid_type] = index + 1
        return (index << 5) | nid_type

    def entry_id(self, nid: int) -> bytes:
        return bytes(4) + self.store_uid + struct.pack("<I", nid)

    def rgnid(self) -> list[int]:
        out = []
        for nid_type in range(32):
            start = _RGNID_START.get(nid_type, 0x400)
            out.append(max(start, self.next_index.get(nid_type, 0)))
        return out

    # -- messages ---------------------------------------------------------------------------

    def write_message(self, msg: Message) -> tuple[int, int, int, list[tuple[int, int]]]:
        """Write a message's subnodes and PC: (bidData, bidSub, size, PC blocks)."""
        ndb = self.ndb
        node = _Node(ndb)
        props = dict(msg.props)
        props.setdefault(PR_MESSAGE_CLASS, "IPM.Note")
        if PR_HTML in props:
            props.setdefault(PR_INTERNET_CPID, 65001)  # the HTML's code page: UTF-8
        flags = MSGFLAG_READ | (MSGFLAG_HASATTACH if msg.attachments else 0)
        props.setdefault(PR_MESSAGE_FLAGS, flags)
        size = sum(_value_size(value) for value in props.values())

        recipients = []
        shown: dict[int, list[str]] = {MAPI_TO: [], MAPI_CC: [], MAPI_BCC: []}
        for index, given in enumerate(msg.recipients):
            row = dict(given)
            row.setdefault(PR_RECIPIENT_TYPE, MAPI_TO)
            row.setdefault(PR_OBJECT_TYPE, 6)  # MAPI_MAILUSER
            row.setdefault(PR_DISPLAY_TYPE, 0)  # DT_MAILUSER
            row.setdefault(PR_RESPONSIBILITY, False)
            row.setdefault(PR_ROWID, index)
            if PR_EMAIL_ADDRESS in row:
                row.setdefault(PR_ADDRTYPE, "SMTP")
            name = row.get(PR_DISPLAY_NAME, row.get(PR_EMAIL_ADDRESS))
            if isinstance(name, str) and row[PR_RECIPIENT_TYPE] in shown:
                shown[row[PR_RECIPIENT_TYPE]].append(name)  # type: ignore[index]
            recipients.append((index, row))
            size += sum(_value_size(value) for value in row.values())
        for kind, tag in ((MAPI_TO, PR_DISPLAY_TO), (MAPI_CC, PR_DISPLAY_CC),
                          (MAPI_BCC, PR_DISPLAY_BCC)):
            props.setdefault(tag, "; ".join(shown[kind]))
        table_node = _Node(ndb)
        blocks = _build_tc(table_node, RECIPIENT_COLUMNS, recipients)
        node.add(NID_RECIPIENT_TABLE, ndb.write_chunks(blocks), table_node.finish())

        if msg.attachments:
            rows = []
            for index, att in enumerate(msg.attachments):
                nid = node.new_nid(NID_TYPE_ATTACHMENT)
                att_node = _Node(ndb)
                aprops = dict(att.props)
                if att.data is not None:
                    aprops[PR_ATTACH_DATA_BIN] = att.data
                    aprops.setdefault(PR_ATTACH_METHOD, ATTACH_BY_VALUE)
                    aprops.setdefault(PR_ATTACH_SIZE, len(att.data))
                if att.embedded is not None:
                    sub_nid = att_node.new_nid(NID_TYPE_NORMAL_MESSAGE)
                    bid_data, bid_sub, sub_size, _ = self.write_message(att.embedded)
                    att_node.add(sub_nid, bid_data, bid_sub)
                    aprops[PR_ATTACH_DATA_OBJ] = _ObjectRef(sub_nid, sub_size)
                    aprops.setdefault(PR_ATTACH_METHOD, ATTACH_EMBEDDED_MSG)
                    aprops.setdefault(PR_ATTACH_SIZE, sub_size)
                aprops.setdefault(PR_ATTACH_METHOD, ATTACH_BY_VALUE)
                aprops.setdefault(PR_ATTACH_SIZE, 0)
                aprops.setdefault(PR_ATTACH_NUM, index)
                aprops.setdefault(PR_RENDERING_POSITION, 0xFFFFFFFF)
                att_size = aprops[PR_ATTACH_SIZE]
                size += att_size if isinstance(att_size, int) else 0
                bid = ndb.write_chunks(_build_pc(att_node, aprops))
                node.add(nid, bid, att_node.finish())
                rows.append((nid, {tag: aprops[tag] for tag in ATTACHMENT_COLUMNS
                                   if tag in aprops}))
            table_node = _Node(ndb)
            blocks = _build_tc(table_node, ATTACHMENT_COLUMNS, rows)
            node.add(NID_ATTACHMENT_TABLE, ndb.write_chunks(blocks), table_node.finish())

        props.setdefault(PR_MESSAGE_SIZE, min(size, 0x7FFFFFFF))
        heap_blocks = _build_pc(node, props)
        outer = ndb.trace
        ndb.trace = pc_blocks = []
        bid_data = ndb.write_chunks(heap_blocks)
        ndb.trace = outer
        if outer is not None:
            outer.extend(pc_blocks)
        bid_sub = node.finish()
        return bid_data, bid_sub, int(props[PR_MESSAGE_SIZE]), pc_blocks  # type: ignore[call-overload]

    # -- folders ----------------------------------------------------------------------------

    def write_folder(self, folder: Folder, nid: int, parent: int, path: tuple[str, ...],
                     container_class: str | None = "IPF.Note") -> dict[int, object]:
        """Write a folder, its messages and subfolders; returns its hierarchy table row."""
        self.folders[path] = nid
        rows = []
        unread = 0
        for msg in folder.messages:
            msg_nid = self.new_nid(NID_TYPE_NORMAL_MESSAGE)
            trace: list[tuple[int, int]] = []
            self.ndb.trace = trace
            bid_data, bid_sub, size, pc_blocks = self.write_message(msg)
            self.ndb.trace = None
            pc_set = set(pc_blocks)
            self.messages.append(MessageLayout(
                path, msg_nid, pc_blocks, [block for block in trace if block not in pc_set]
            ))
            self.nbt.append((msg_nid, bid_data, bid_sub, nid))
            flags = msg.props.get(PR_MESSAGE_FLAGS, MSGFLAG_READ)
            if not (isinstance(flags, int) and flags & MSGFLAG_READ):
                unread += 1
            row = {tag: msg.props[tag] for tag in CONTENTS_COLUMNS if tag in msg.props}
            row.setdefault(PR_MESSAGE_CLASS, "IPM.Note")
            row.setdefault(PR_MESSAGE_FLAGS, MSGFLAG_READ | (
                MSGFLAG_HASATTACH if msg.attachments else 0))
            row.setdefault(PR_MESSAGE_SIZE, size)
            rows.append((msg_nid, row))
        children = []
        for sub in folder.folders:
            sub_nid = self.new_nid(NID_TYPE_NORMAL_FOLDER)
            children.append((sub_nid, self.write_folder(sub, sub_nid, nid, (*path, sub.name))))
        return self.write_folder_objects(
            nid, parent, folder.name, rows, children, unread, container_class
        )

    def write_folder_objects(
        self, nid: int, parent: int, name: str, rows: list[tuple[int, dict[int, object]]],
        children: list[tuple[int, dict[int, object]]], unread: int,
        container_class: str | None,
    ) -> dict[int, object]:
        props: dict[int, object] = {
            PR_DISPLAY_NAME: name,
            PR_CONTENT_COUNT: len(rows),
            PR_CONTENT_UNREAD: unread,
            PR_SUBFOLDERS: bool(children),
        }
        if container_class:
            props[PR_CONTAINER_CLASS] = container_class
        self.write_pc_node(nid, parent, props)
        base = nid & ~0x1F
        self.write_tc_node(base | NID_TYPE_HIERARCHY_TABLE, 0, HIERARCHY_COLUMNS, children)
        self.write_tc_node(base | NID_TYPE_CONTENTS_TABLE, 0, CONTENTS_COLUMNS, rows)
        self.write_tc_node(base | NID_TYPE_ASSOC_CONTENTS_TABLE, 0, ASSOC_CONTENTS_COLUMNS, [])
        return props

    def write_pc_node(self, nid: int, parent: int, props: dict[int, object]) -> None:
        node = _Node(self.ndb)
        bid = self.ndb.write_chunks(_build_pc(node, props))
        self.nbt.append((nid, bid, node.finish(), parent))

    def write_tc_node(self, nid: int, parent: int, columns: Iterable[int],
                      rows: list[tuple[int, dict[int, object]]]) -> None:
        node = _Node(self.ndb)
        bid = self.ndb.write_chunks(_build_tc(node, columns, rows))
        self.nbt.append((nid, bid, node.finish(), parent))

    def write_store(self, root_folders: list[Folder], display_name: str) -> None:
        ipm = self.new_nid(NID_TYPE_NORMAL_FOLDER)
        search = self.new_nid(NID_TYPE_NORMAL_FOLDER)
        top = Folder("Top of Personal Folders", [], root_folders)
        ipm_row = self.write_folder(top, ipm, NID_ROOT_FOLDER, (), container_class=None)
        self.folders.pop(())
        search_row = self.write_folder_objects(search, NID_ROOT_FOLDER, "Search Root", [], [], 0,
                                               None)
        self.write_folder_objects(NID_ROOT_FOLDER, NID_ROOT_FOLDER, "", [],
                                  [(ipm, ipm_row), (search, search_row)], 0, None)
        self.write_pc_node(NID_MESSAGE_STORE, 0, {
            PR_RECORD_KEY: self.store_uid,
            PR_DISPLAY_NAME: display_name,
            PR_IPM_SUBTREE_ENTRYID: self.entry_id(ipm),
            PR_FINDER_ENTRYID: self.entry_id(search),
            PR_VALID_FOLDER_MASK: 0x81,  # FOLDER_IPM_SUBTREE_VALID | FOLDER_FINDER_VALID
            PR_PST_PASSWORD: 0,
        })
        self.write_pc_node(NID_NAME_TO_ID_MAP, 0, {
            PR_NAMEID_BUCKET_COUNT: 251,
            PR_NAMEID_STREAM_GUID: _PSETID_COMMON.bytes_le,
            PR_NAMEID_STREAM_ENTRY: b"".join(struct.pack("<IHH", *entry) for entry in _NAMEIDS),
            PR_NAMEID_STREAM_STRING: _NAMEID_STRINGS,
        })
        self.write_tc_node(NID_HIERARCHY_TABLE_TEMPLATE, 0, HIERARCHY_COLUMNS, [])
        self.write_tc_node(NID_CONTENTS_TABLE_TEMPLATE, 0, CONTENTS_COLUMNS, [])
        self.write_tc_node(NID_ASSOC_CONTENTS_TABLE_TEMPLATE, 0, ASSOC_CONTENTS_COLUMNS, [])
        self.write_tc_node(NID_SEARCH_CONTENTS_TABLE_TEMPLATE, 0, CONTENTS_COLUMNS, [])


def write_pst(
    path: str | PathLike[str],
    root_folders: list[Folder],
    *,
    encryption: str = "permute",
    display_name: str = "Personal Folders",
) -> PstLayout:
    """Write a Unicode PST with ``root_folders`` under its IPM subtree; returns its layout.

    ``encryption`` is "permute" (NDB_CRYPT_PERMUTE, what Outlook writes) or "none". Values the
    caller gives are written as given; what is missing is filled in: PR_MESSAGE_CLASS
    "IPM.Note", PR_MESSAGE_FLAGS (read, and has-attachments when there are some),
    PR_MESSAGE_SIZE, PR_DISPLAY_TO/CC/BCC from the recipients, PR_INTERNET_CPID 65001 (UTF-8)
    beside PR_HTML; for recipients PR_RECIPIENT_TYPE (To), PR_OBJECT_TYPE, PR_DISPLAY_TYPE,
    PR_ADDRTYPE "SMTP", PR_ROWID; for attachments PR_ATTACH_METHOD (1 with ``data``, 5 with
    ``embedded``), PR_ATTACH_SIZE, PR_ATTACH_NUM, PR_RENDERING_POSITION; for folders
    PR_CONTENT_COUNT, PR_CONTENT_UNREAD, PR_SUBFOLDERS and PR_CONTAINER_CLASS "IPF.Note".
    """
    crypt = {"none": NDB_CRYPT_NONE, "permute": NDB_CRYPT_PERMUTE}.get(encryption)
    if crypt is None:
        raise ValueError(f"unknown encryption {encryption!r}")
    with open(path, "wb+") as fh:
        writer = _Writer(fh, crypt)
        writer.write_store(root_folders, display_name)
        nbt_ib, bbt_ib, nbt_pages, bbt_pages, amap_pages = writer.ndb.finish(
            writer.nbt, writer.rgnid()
        )
        size = fh.seek(0, 2)
    return PstLayout(
        path=str(path),
        file_size=size,
        encryption=encryption,
        messages=writer.messages,
        nbt_root=nbt_ib,
        bbt_root=bbt_ib,
        nbt_pages=nbt_pages,
        bbt_pages=bbt_pages,
        amap_pages=amap_pages,
        folders=writer.folders,
    )
