"""Faults in the mail being imported, through the CLI (and once through the Importer API).

- an mbox.gz whose last bytes are cut off: the report names the file, everything before the cut
  is archived byte for byte, exit code 1;
- a Maildir file that vanishes while the import runs (the Importer API, see the test);
- a message Python's email package cannot parse, one without headers, a random binary blob and
  one with NUL bytes: archived (exit 0), warnings not failures, exported byte for byte,
  searchable by a word that could be decoded;
- a ~48 MB message (streamed path, files over 32 MiB): imported, `show --raw` byte-identical,
  found by a word of its text part, and the import's peak RSS printed (loosely bounded); these
  `mailkeep` runs are real processes, whose memory is measured and whose output is streamed.
"""

from __future__ import annotations

import base64
import email
import email.policy
import gzip
import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mailkeep.core.archive import Archive
from mailkeep.core.ingest import Importer, Outcome
from mailkeep.core.message import RawMessage
from mailkeep.sources.detect import open_source, read_paths
from tests.helpers import BULK, MAILKEEP, clean_env, mk


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def jsonl(out: str) -> tuple[list[dict[str, object]], dict[str, int]]:
    lines = [json.loads(line) for line in out.splitlines()]
    assert "summary" in lines[-1], lines[-1]
    return lines[:-1], lines[-1]["summary"]


def exported(data: Path, out: Path) -> dict[str, str]:
    """id -> sha256 of every .eml that `mailkeep export` wrote."""
    res = mk(data, "export", "--to", str(out))
    assert res.exit_code == 0, res.stderr
    return {"{}:{}".format(*p.stem.split("-")): sha(p.read_bytes()) for p in out.rglob("*.eml")}


def search_ids(data: Path, query: str) -> list[str]:
    res = mk(data, "search", query, "--json")
    assert res.exit_code == 0, res.stderr
    return [m["id"] for m in json.loads(res.stdout)["messages"]]


# -- a cut mbox.gz ----------------------------------------------------------------------------
def test_cut_gzip_mbox_names_the_file_and_keeps_the_rest(tmp_path: Path) -> None:
    whole = (BULK / "linux-mips-1996.mbox.gz").read_bytes()
    cut = tmp_path / "linux-mips-1996.mbox.gz"
    cut.write_bytes(whole[:-3000])
    complete = tmp_path / "whole.mbox.gz"
    complete.write_bytes(whole)
    originals = [m.data for m in open_source(complete) if isinstance(m, RawMessage)]
    readable = [m for m in open_source(cut) if isinstance(m, RawMessage)]
    assert 200 < len(readable) < len(originals)

    res = mk(tmp_path / "data", "import", str(cut), "--jsonl")
    assert res.exit_code == 1, res.stdout[-500:] + res.stderr
    lines, summary = jsonl(res.stdout)
    failed = [r for r in lines if r["status"] == "failed"]
    assert len(failed) == 1 and str(failed[0]["origin"]).startswith(str(cut)), failed
    assert summary["failed"] == 1 and summary["archived"] == len(readable), summary
    # everything before the cut is there, byte for byte: the first messages of the whole file
    archived = {str(r["id"]): int(str(r["origin"]).rsplit("#", 1)[1])
                for r in lines if r["status"] == "archived"}
    got = exported(tmp_path / "data", tmp_path / "out")
    assert {got[i] for i in archived} == {sha(m) for m in originals[: len(readable)]
                                         if m is not None}
    assert all(got[i] == sha(originals[n - 1] or b"") for i, n in archived.items())

    # the human report names the file too
    res = mk(tmp_path / "data2", "import", str(cut))
    assert res.exit_code == 1
    assert str(cut) in res.stderr and "failed" in res.stderr, res.stderr
    assert f"{len(readable)} archived" in res.stdout and "1 failed" in res.stdout, res.stdout


# -- a Maildir file that vanishes mid-import ---------------------------------------------------
def test_maildir_file_vanishing_mid_import(tmp_path: Path) -> None:
    """The Maildir holds an empty message file that sorts first, then 250 messages. An empty
    file is skipped, and a skip is reported at once (archived messages only at a commit), so
    the on_outcome callback runs while the import has read only that first file: it deletes
    the last message file, which the import then finds gone when it gets there. Nothing is
    faked: the file really vanishes between the directory listing and its read."""
    with gzip.open(BULK / "linux-mips-1997.mbox.gz") as gz:
        parts = gz.read().split(b"\nFrom mboxrd@z Thu Jan  1 00:00:00 1970\n")[1:251]
    box = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "cur" / "0000000000.empty.host:2,S").write_bytes(b"")
    files = []
    for i, raw in enumerate(parts):
        f = box / "cur" / f"{1000000000 + i}.M{i}.host:2,S"
        f.write_bytes(raw)
        files.append(f)
    victim = files[-1]
    outcomes: list[Outcome] = []
    deleted_after: list[int] = []

    def on_outcome(o: Outcome) -> None:
        outcomes.append(o)
        if not deleted_after:
            victim.unlink()
            deleted_after.append(len(outcomes))

    data = tmp_path / "data"
    with Archive(data) as archive:
        stats = Importer(archive, on_outcome=on_outcome, workers=1).run(read_paths([box]))
    assert deleted_after == [1] and outcomes[0].status == "skipped"
    failed = [o for o in outcomes if o.status == "failed"]
    assert [(o.origin, o.reason) for o in failed] == [(str(victim), "No such file or directory")]
    assert stats.failed == 1 and stats.skipped == 1 and stats.archived == len(parts) - 1
    assert stats.problems == [(str(victim), "No such file or directory")]
    archived = {o.message_id: o.origin for o in outcomes if o.status == "archived"}
    got = exported(data, tmp_path / "out")
    by_origin = {str(f): sha(raw) for f, raw in zip(files, parts, strict=True)}
    assert {mid: got[str(mid)] for mid in archived} == {
        mid: by_origin[origin] for mid, origin in archived.items()}
    assert mk(data, "verify").exit_code == 0
    # the CLI reports such an import with exit code 1 and names the file (here: one that
    # cannot be opened at all, the same SourceProblem path)
    res = mk(tmp_path / "data2", "import", str(victim))
    assert res.exit_code == 1 and str(victim) in res.stderr, res.stderr


# -- malformed messages ----------------------------------------------------------------------
UNPARSABLE = (b"From: a@[\nTo: <\nMessage-ID: <[>\nSubject: quokkaword in an odd message\n"
              b"Date: Tue, 3 Mar 2015 10:00:00 +0000\n\nthe body says wombatword\n")
NO_HEADERS = b"just some text without any header at all\nsecond line with platypusword\n"
WITH_NUL = (b"From: nul@example.org\nSubject: nul\x00bytes\nDate: Tue, 3 Mar 2015 11:00:00 +0000"
            b"\n\nbefore\x00after axolotlword\x00 and more\n")


def test_malformed_messages_are_archived_as_they_are(tmp_path: Path) -> None:
    # Python's email package really fails on the first one
    msg = email.message_from_bytes(UNPARSABLE, policy=email.policy.default)
    with pytest.raises((IndexError, AttributeError)):
        [str(msg[k]) for k in msg.keys()]  # noqa: B018
    blob = random.Random(99).randbytes(20000)
    assert not blob.startswith((b"From ", b"\x1f\x8b"))
    src = tmp_path / "odd"
    src.mkdir()
    files = {"unparsable.eml": UNPARSABLE, "no-headers.eml": NO_HEADERS,
             "blob.bin": blob, "nul.eml": WITH_NUL}
    for name, raw in files.items():
        (src / name).write_bytes(raw)

    data = tmp_path / "data"
    res = mk(data, "import", str(src), "--jsonl")
    assert res.exit_code == 0, res.stdout + res.stderr
    lines, summary = jsonl(res.stdout)
    assert summary["archived"] == 4 and summary["failed"] == 0, summary
    assert summary["warnings"] == sum(1 for r in lines if r.get("warnings")), lines
    ids = {Path(str(r["origin"])).name: str(r["id"]) for r in lines if r["status"] == "archived"}
    warned = {Path(str(r["origin"])).name for r in lines if r.get("warnings")}
    assert {"no-headers.eml", "blob.bin"} <= warned, lines
    print("\nwarnings:", {Path(str(r["origin"])).name: r.get("warnings") for r in lines})

    got = exported(data, tmp_path / "out")
    assert {name: got[ids[name]] for name in files} == {n: sha(r) for n, r in files.items()}
    for name in files:
        shown = mk(data, "show", ids[name])  # the decoded view does not fail either
        assert shown.exit_code == 0 and "Traceback" not in shown.stderr, shown.stderr
    for word, name in [("quokkaword", "unparsable.eml"), ("wombatword", "unparsable.eml"),
                       ("platypusword", "no-headers.eml"), ("axolotlword", "nul.eml")]:
        assert search_ids(data, word) == [ids[name]], word
    assert mk(data, "verify").exit_code == 0


# -- a large message --------------------------------------------------------------------------
LARGE_WORD = "xylophonequartz"


def write_large_message(path: Path, target: int) -> None:
    """headers, a text part with LARGE_WORD, and a base64 attachment of random bytes."""
    rng = random.Random(48)
    head = (b"From: Big Sender <big@example.org>\nTo: archive@example.org\n"
            b"Subject: a very large message\nDate: Wed, 4 Mar 2015 09:00:00 +0000\n"
            b"Message-ID: <large-48mb@example.org>\nMIME-Version: 1.0\n"
            b'Content-Type: multipart/mixed; boundary="==big=="\n\n'
            b"--==big==\nContent-Type: text/plain; charset=utf-8\n\n"
            b"The attachment is the whole point; the word to find is "
            + LARGE_WORD.encode() + b".\n\n"
            b"--==big==\nContent-Type: application/octet-stream; name=\"big.bin\"\n"
            b"Content-Disposition: attachment; filename=\"big.bin\"\n"
            b"Content-Transfer-Encoding: base64\n\n")
    tail = b"--==big==--\n"
    chunk = 57 * 18000  # whole base64 lines per chunk
    with open(path, "wb") as fh:
        fh.write(head)
        while fh.tell() + len(tail) < target:
            fh.write(base64.encodebytes(rng.randbytes(chunk)))
        fh.write(tail)


@pytest.mark.slow
def test_large_message_is_streamed(tmp_path: Path) -> None:
    big = tmp_path / "big.eml"
    write_large_message(big, 100 << 20)
    size = big.stat().st_size
    assert size > 32 << 20  # over the streaming threshold
    item = next(iter(open_source(big)))
    assert isinstance(item, RawMessage) and item.stream is not None  # the streamed path
    item.close()
    digest = hashlib.sha256()
    with open(big, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)

    try:
        check_large_message(big, size, digest.hexdigest(), tmp_path)
    finally:  # do not leave ~100 MB behind in the kept pytest directories
        for p in (big, tmp_path / "shown.eml"):
            p.unlink(missing_ok=True)


def check_large_message(big: Path, size: int, digest: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Run the import under a small parent of its own, so that RUSAGE_CHILDREN is its alone.
    wrapper = ("import resource, subprocess, sys\n"
               "r = subprocess.run(sys.argv[1:])\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
               "sys.exit(r.returncode)\n")

    def peak_rss(*args: str) -> tuple[subprocess.CompletedProcess[str], int]:
        res = subprocess.run([sys.executable, "-c", wrapper, *MAILKEEP, "--data", str(data),
                              *args], capture_output=True, text=True, timeout=300,
                             env=clean_env())
        assert res.returncode == 0, res.stdout + res.stderr
        return res, int(res.stderr.strip().splitlines()[-1]) * 1024  # ru_maxrss: KiB

    res, peak = peak_rss("import", str(big), "--jsonl")
    # What the program costs without the message: the same command on a tiny one.
    tiny = tmp_path / "tiny" / "t.eml"
    tiny.parent.mkdir()
    tiny.write_bytes(b"Subject: tiny\r\n\r\nx\r\n")
    _res, baseline = peak_rss("import", str(tiny), "--jsonl")
    print(f"\nimport of a {size / 2**20:.1f} MiB message: peak RSS {peak / 2**20:.1f} MiB "
          f"({baseline / 2**20:.1f} MiB for a tiny one)")
    lines, summary = jsonl(res.stdout)
    assert summary["archived"] == 1 and summary["failed"] == 0, summary
    (mid,) = [str(r["id"]) for r in lines if r["status"] == "archived"]
    # Streamed: what it costs is bounded by the 16 MB head that is indexed (as bytes, as text
    # and parsed), not by the size of the message.
    assert peak - baseline < 64 << 20 < size, f"peak RSS {peak} ({baseline} without it)"

    with open(tmp_path / "shown.eml", "wb") as out:
        raw = subprocess.run([*MAILKEEP, "--data", str(data), "show", mid, "--raw"],
                             stdout=out, stderr=subprocess.PIPE, timeout=300, env=clean_env())
    assert raw.returncode == 0, raw.stderr
    assert (tmp_path / "shown.eml").stat().st_size == size
    shown = hashlib.sha256()
    with open(tmp_path / "shown.eml", "rb") as fh:
        while chunk := fh.read(1 << 20):
            shown.update(chunk)
    assert shown.hexdigest() == digest
    assert search_ids(data, LARGE_WORD) == [mid]
    assert search_ids(data, "attachment:big.bin") == [mid]
    assert mk(data, "verify").exit_code == 0

