"""The whole tricky corpus through the CLI: import everything, export everything, compare bytes.

What goes in is what mailkeep.sources.detect.open_source reads from the corpus; what comes out
of `mailkeep export` must be exactly that, one file per distinct (folder, bytes) pair. Through an
mbox export the messages come back byte for byte too, except for the one documented mboxrd
limitation: a message that does not end with a newline gets one.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from click.testing import Result

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources.detect import open_source
from tests.helpers import TRICKY, mk

SUMMARY = re.compile(r"(\d+) archived, (\d+) duplicates, (\d+) failed, (\d+) skipped, ")


def summary_counts(result: Result) -> dict[str, int]:
    m = SUMMARY.search(result.stdout)
    assert m, result.output
    keys = ("archived", "duplicates", "failed", "skipped")
    return dict(zip(keys, map(int, m.groups()), strict=True))


def expected_from_corpus() -> tuple[list[tuple[str, bytes]], int, int]:
    """(folder, bytes) of every message open_source yields, and the skipped/failed counts."""
    messages: list[tuple[str, bytes]] = []
    skipped = failed = 0
    for item in open_source(TRICKY):
        if isinstance(item, SourceProblem):
            if item.skipped:
                skipped += 1
            else:
                failed += 1
            continue
        assert isinstance(item, RawMessage)
        if item.data is not None:
            data = item.data
        else:
            assert item.stream is not None
            data = item.stream.read(item.size)
            item.close()
        messages.append((item.folder, data))
    return messages, skipped, failed


def exported_files(root: Path, owner: str = "admin") -> Counter[tuple[str, bytes]]:
    """(folder, bytes) of every file an export to a directory wrote."""
    out: Counter[tuple[str, bytes]] = Counter()
    base = root / owner
    for path in root.rglob("*"):
        if path.is_file():
            assert path.suffix == ".eml", path
            folder = os.path.relpath(path.parent, base)
            out[("" if folder == "." else folder.replace(os.sep, "/"), path.read_bytes())] += 1
    return out


def test_tricky_corpus_round_trip(tmp_path: Path) -> None:
    messages, skipped, failed = expected_from_corpus()
    distinct = set(messages)  # the same bytes in the same folder is one entry
    assert len(messages) > 1000 and len(distinct) < len(messages)
    assert failed == 0

    data = tmp_path / "data"
    imported = mk(data, "import", str(TRICKY))
    assert imported.exit_code == 0, imported.output
    assert summary_counts(imported) == {
        "archived": len(distinct), "duplicates": len(messages) - len(distinct),
        "failed": 0, "skipped": skipped}

    # Every message back, byte for byte, in its folder; one file per distinct (folder, bytes).
    out = tmp_path / "out"
    exported = mk(data, "export", "--to", str(out))
    assert exported.exit_code == 0, exported.output
    assert f"exported {len(distinct)} messages" in exported.stdout
    got = exported_files(out)
    assert sum(got.values()) == len(distinct)
    missing = Counter(dict.fromkeys(distinct, 1)) - got
    extra = got - Counter(dict.fromkeys(distinct, 1))
    assert not missing and not extra, (
        f"{len(missing)} missing, e.g. {sorted(f for f, _ in missing)[:5]}; "
        f"{len(extra)} unexpected, e.g. {sorted(f for f, _ in extra)[:5]}")

    # Everything as one mbox, imported into a fresh data directory: the same bytes, except
    # that a message not ending with "\n" gets one (the documented mboxrd limitation).
    mbox = tmp_path / "all.mbox"
    exported = mk(data, "export", "--to", str(mbox))
    assert exported.exit_code == 0, exported.output
    assert f"exported {len(distinct)} messages" in exported.stdout

    def with_newline(raw: bytes) -> bytes:
        return raw if raw.endswith(b"\n") else raw + b"\n"

    unterminated = {raw for _, raw in distinct if not raw.endswith(b"\n")}
    assert unterminated, "the corpus should hold messages without a final newline"
    back_expected = {with_newline(raw) for _, raw in distinct}  # all land in one folder

    data2 = tmp_path / "data2"
    reimported = mk(data2, "import", str(mbox))
    assert reimported.exit_code == 0, reimported.output
    assert summary_counts(reimported) == {
        "archived": len(back_expected), "duplicates": len(distinct) - len(back_expected),
        "failed": 0, "skipped": 0}
    out2 = tmp_path / "out2"
    assert mk(data2, "export", "--to", str(out2)).exit_code == 0
    back = exported_files(out2)
    assert {folder for folder, _ in back} == {""}  # an mbox named directly is the base folder
    back_bytes = Counter(raw for _, raw in back)
    assert max(back_bytes.values()) == 1
    assert set(back_bytes) == back_expected
    # Exactly the unterminated messages changed, and only by one final "\n".
    changed = set(back_bytes) - {raw for _, raw in distinct}
    assert changed == {raw + b"\n" for raw in unterminated} - {raw for _, raw in distinct}
