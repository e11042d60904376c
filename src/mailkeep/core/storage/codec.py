"""Compression of message payloads: zstd, with a per-store dictionary once one is trained.

Mail compresses poorly one message at a time (headers repeat across messages, not within
one); a dictionary trained on the store's own first messages recovers most of a stream's ratio
while each message stays independently readable.
"""

from __future__ import annotations

from collections.abc import Iterator

import zstandard

LEVEL = 6
DICT_BYTES = 112 * 1024
MIN_SAMPLES = 200  # fewer messages than this do not make a useful dictionary
FIRST_DICT_AFTER = 1000  # messages in a store before its first dictionary
DICT_EVERY = 10_000  # new messages after which the store trains a fresh one
SAMPLE_MESSAGES = 2000  # the newest messages are the samples
SAMPLE_BYTES = 16 << 20
SAMPLE_CAP = 32 * 1024  # each sample is a message's head: headers and the start of the body
# The COVER parameters (segment size, d-mer size) given, not searched for: zstd's search tries
# some forty pairs and costs four times as long (0.9 s against 0.2 s on 2,000 messages of the
# linux-mips corpus) for a dictionary that compresses 0.3% better (bench/README.md).
COVER_K, COVER_D = 1024, 8


def train(samples: list[bytes]) -> bytes | None:
    """A dictionary from sample messages, or None if they are too few to help."""
    if len(samples) < MIN_SAMPLES:
        return None
    try:
        d = zstandard.train_dictionary(DICT_BYTES, [s[:SAMPLE_CAP] for s in samples],
                                       k=COVER_K, d=COVER_D, level=LEVEL)
    except zstandard.ZstdError:
        return None
    return bytes(d.as_bytes())


class Codec:
    """Compresses with the newest dictionary; decompresses with whichever one a record names."""

    def __init__(self, dictionaries: dict[int, bytes]) -> None:
        self._raw = dictionaries  # each made a zstd dictionary when first used
        self._dicts: dict[int, zstandard.ZstdCompressionDict] = {}
        self.dict_id = max(dictionaries) if dictionaries else None
        self._cctx_made: zstandard.ZstdCompressor | None = None
        self._dctx: dict[int | None, zstandard.ZstdDecompressor] = {}

    def _dict(self, dict_id: int) -> zstandard.ZstdCompressionDict:
        d = self._dicts.get(dict_id)
        if d is None:
            d = self._dicts[dict_id] = zstandard.ZstdCompressionDict(self._raw[dict_id])
        return d

    @property
    def _cctx(self) -> zstandard.ZstdCompressor:
        if self._cctx_made is None:
            zd = self._dict(self.dict_id) if self.dict_id is not None else None
            self._cctx_made = zstandard.ZstdCompressor(level=LEVEL, dict_data=zd,
                                                       write_content_size=True)
        return self._cctx_made

    def compress(self, raw: bytes) -> bytes:
        return bytes(self._cctx.compress(raw))

    def compress_stream(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        cobj = self._cctx.compressobj()
        for chunk in chunks:
            out = cobj.compress(chunk)
            if out:
                yield out
        yield cobj.flush()

    def _decompressor(self, dict_id: int | None) -> zstandard.ZstdDecompressor:
        d = self._dctx.get(dict_id)
        if d is None:
            if dict_id is not None and dict_id not in self._raw:
                raise KeyError(f"dictionary {dict_id} is missing")
            zd = self._dict(dict_id) if dict_id is not None else None
            d = self._dctx[dict_id] = zstandard.ZstdDecompressor(dict_data=zd)
        return d

    def decompress(self, payload: bytes, dict_id: int | None, raw_size: int) -> bytes:
        return bytes(self._decompressor(dict_id).decompress(payload, max_output_size=raw_size))

    def decompress_stream(self, chunks: Iterator[bytes], dict_id: int | None) -> Iterator[bytes]:
        dobj = self._decompressor(dict_id).decompressobj()
        for chunk in chunks:
            out = dobj.decompress(chunk)
            if out:
                yield out
