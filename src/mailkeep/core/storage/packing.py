"""Turning raw bytes into what a store writes: content id, sealed payload, index rows.

A Packer holds only picklable state (dictionaries, store key) so that worker processes can
do the CPU-heavy part (parsing, compressing, sealing) while one process writes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mailkeep.core.crypto import Sealer
from mailkeep.core.mime.parse import IndexFields, extract
from mailkeep.core.storage.catalog import attachment_column, index_columns
from mailkeep.core.storage.codec import Codec

PARTIAL_INDEX_BYTES = 16 << 20  # a larger message is indexed from its first bytes only


@dataclass
class BlobInfo:
    date: int
    subject: str
    sender: str
    recipients: str
    message_id: str | None
    has_attachment: bool
    warnings: str
    index: tuple[str, str, str, str, str]  # subject, sender, recipients, body, attachments
    documents: str = ""  # the text inside its attachments, kept (blob_documents)


@dataclass
class Prepared:
    content_id: bytes
    raw_size: int
    payload: bytes
    dict_id: int | None
    sealed: bool
    info: BlobInfo
    raw_sha256: bytes = b""  # what the store's tree commits to (core/storage/tree.py)


def index_fields(head: bytes, size: int, documents: bool = False) -> IndexFields:
    """What to index of a message of `size` bytes whose first bytes are `head` (`documents`:
    the text inside its attachments too; in a worker process only). Never raises."""
    fields = extract(head[:PARTIAL_INDEX_BYTES], documents=documents)
    if size > PARTIAL_INDEX_BYTES:
        fields.warnings.append("message indexed from its first 16 MB only")
    fields.columns = index_columns(fields.subject, fields.sender, fields.recipients,
                                   fields.body, attachment_column(fields.attachments,
                                                                  fields.documents))
    return fields


def blob_info(fields: IndexFields, fallback_date: float) -> BlobInfo:
    date = fields.date if fields.date is not None else fallback_date
    return BlobInfo(
        date=int(date), subject=fields.subject, sender=fields.sender,
        recipients=fields.recipients, message_id=fields.message_id,
        has_attachment=fields.has_attachment, warnings="\n".join(fields.warnings),
        index=fields.columns or index_columns(
            fields.subject, fields.sender, fields.recipients, fields.body,
            attachment_column(fields.attachments, fields.documents)),
        documents=fields.documents)


def message_aad(content_id: bytes) -> bytes:
    return b"M" + content_id


class Packer:
    def __init__(self, dictionaries: dict[int, bytes], store_key: bytes | None) -> None:
        self._dictionaries = dictionaries
        self._store_key = store_key
        self._setup()

    def _setup(self) -> None:
        self.codec = Codec(self._dictionaries)
        self.sealer = Sealer(self._store_key) if self._store_key is not None else None

    def __getstate__(self) -> dict[str, object]:
        return {"d": self._dictionaries, "k": self._store_key}

    def __setstate__(self, state: dict[str, object]) -> None:
        self._dictionaries = state["d"]  # type: ignore[assignment]
        self._store_key = state["k"]  # type: ignore[assignment]
        self._setup()

    def content_id(self, raw: bytes) -> bytes:
        if self.sealer is not None:
            return self.sealer.content_id(raw)
        return hashlib.sha256(raw).digest()

    def content_hasher(self) -> hashlib._Hash | object:
        return self.sealer.content_hasher() if self.sealer is not None else hashlib.sha256()

    def prepare(self, raw: bytes, content_id: bytes, fallback_date: float,
                fields: IndexFields | None = None, documents: bool = False) -> Prepared:
        """Compressed, sealed and index rows; `fields`: the text extracted already (else it is
        extracted here)."""
        if fields is None:
            fields = index_fields(raw, len(raw), documents)
        payload = self.codec.compress(raw)
        if self.sealer is not None:
            payload = self.sealer.seal(payload, message_aad(content_id))
        raw_sha256 = hashlib.sha256(raw).digest() if self.sealer is not None else content_id
        return Prepared(content_id, len(raw), payload, self.codec.dict_id,
                        self.sealer is not None, blob_info(fields, fallback_date), raw_sha256)

    def unpack(self, header: dict[str, object], payload: bytes, content_id: bytes) -> bytes:
        if header.get("sealed"):
            if self.sealer is None:
                raise ValueError("sealed record in a store without a key")
            payload = self.sealer.open(payload, message_aad(content_id))
        dict_id = header.get("dict")
        size = header.get("size")
        assert isinstance(size, int)
        return self.codec.decompress(payload, dict_id if isinstance(dict_id, int) else None, size)
