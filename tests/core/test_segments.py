"""Segment records: round trip, torn tails and flipped bytes found by scanning."""

from __future__ import annotations

from pathlib import Path

from mailkeep.core.storage import segments as seg


def _write(tmp_path: Path, n: int) -> list[seg.Record]:
    w = seg.SegmentWriter(tmp_path, 1, len(seg.FILE_HEADER), 1 << 30)
    recs = [w.append(seg.MESSAGE, {"id": f"{i:064x}", "size": i}, bytes([i % 256]) * (100 + i))
            for i in range(n)]
    w.close()
    return recs


def test_records_read_back_in_order(tmp_path: Path) -> None:
    recs = _write(tmp_path, 20)
    got = list(seg.scan(tmp_path / seg.segment_name(1), 1))
    assert [r.offset for r in got if isinstance(r, seg.Record)] == [r.offset for r in recs]
    assert all(isinstance(r, seg.Record) for r in got)
    assert got[5].payload == bytes([5]) * 105  # type: ignore[union-attr]


def test_flipped_byte_is_one_damaged_record_and_the_rest_survive(tmp_path: Path) -> None:
    recs = _write(tmp_path, 10)
    path = tmp_path / seg.segment_name(1)
    data = bytearray(path.read_bytes())
    data[recs[4].payload_offset + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    got = list(seg.scan(path, 1))
    damage = [d for d in got if isinstance(d, seg.Damage)]
    assert len(damage) == 1
    assert damage[0].start == recs[4].offset and damage[0].end == recs[5].offset
    assert damage[0].reason == "checksum mismatch"
    assert len([r for r in got if isinstance(r, seg.Record)]) == 9


def test_damaged_length_field_resynchronises_on_the_next_record(tmp_path: Path) -> None:
    recs = _write(tmp_path, 10)
    path = tmp_path / seg.segment_name(1)
    data = bytearray(path.read_bytes())
    data[recs[2].offset + 9: recs[2].offset + 17] = b"\xff" * 8  # payload length
    path.write_bytes(bytes(data))
    good = [r.offset for r in seg.scan(path, 1) if isinstance(r, seg.Record)]
    assert good == [r.offset for r in recs if r is not recs[2]]


def test_torn_tail_is_reported_as_damage_to_the_end(tmp_path: Path) -> None:
    recs = _write(tmp_path, 5)
    path = tmp_path / seg.segment_name(1)
    with open(path, "r+b") as fh:
        fh.truncate(recs[-1].offset + 10)
    got = list(seg.scan(path, 1))
    assert isinstance(got[-1], seg.Damage)
    assert got[-1].end == path.stat().st_size
    assert len(got) == 5


def test_rollover_and_streamed_payload(tmp_path: Path) -> None:
    w = seg.SegmentWriter(tmp_path, 1, len(seg.FILE_HEADER), 1000)
    for _ in range(5):
        w.append(seg.ENTRY, {"n": 1}, b"x" * 400)
    big = w.append_stream(seg.MESSAGE, {"id": "ab"}, iter([b"a" * 3000, b"b" * 3000]))
    w.close()
    assert seg.segment_numbers(tmp_path) == [1, 2]  # rolls once a segment passes 1000 bytes
    rec = [r for r in seg.scan(tmp_path / seg.segment_name(big.segment), big.segment)
           if isinstance(r, seg.Record) and r.type == seg.MESSAGE][0]
    assert rec.payload == b"a" * 3000 + b"b" * 3000
