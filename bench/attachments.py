"""What reading the text inside attachments costs an import: messages carrying real
attachments the benchmark builds with the libraries that write them (PDF, Word, Excel,
PowerPoint, OpenDocument, RTF, CSV, zip), imported as `mailkeep import` does (its worker
processes) into fresh data directories with the text read and without (setting
archive.attachment_text), alternately in one run; the same mail archived without the text and
read afterwards by IndexAttachmentText; and one hostile attachment's cost (a zip bomb, a PDF of
many pages)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from soak import machine  # noqa: E402

from mailkeep.core import reindex  # noqa: E402
from mailkeep.core.admin.settings import Settings  # noqa: E402
from mailkeep.core.archive import Archive  # noqa: E402
from mailkeep.core.ingest import Importer  # noqa: E402
from mailkeep.core.mime.documents import attachment_text  # noqa: E402
from mailkeep.sources.detect import read_paths  # noqa: E402
from tests.core.test_documents import odt, pdf, sheet, slides, word, zipped  # noqa: E402


def build(root: Path, count: int) -> int:
    """`count` messages, each with two of the attachments, as .eml files; their bytes."""
    kinds = [
        ("invoice-{i}.pdf", lambda i: pdf(f"Invoice {i} total due", pages=3)),
        ("contract-{i}.docx", lambda i: word(f"Contract {i} between the parties " * 20)),
        ("orders-{i}.xlsx", lambda i: sheet(f"order {i}", rows=200)),
        ("pitch-{i}.pptx", lambda i: slides(f"Pitch {i}")),
        ("letter-{i}.odt", lambda i: odt(f"Letter {i}")),
        ("memo-{i}.rtf", lambda i: f"{{\\rtf1\\ansi Memo {i}\\par}}".encode()),
        ("data-{i}.csv", lambda i: "\n".join(f"{i},{j},widget" for j in range(500)).encode()),
        ("bundle-{i}.zip", lambda i: zipped(**{"a.docx": word(f"Inner {i}"), "b.txt": b"x"})),
    ]
    root.mkdir(parents=True)
    total = 0
    for i in range(count):
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "a@example.org", "b@example.org", f"attachments {i}"
        m.set_content(f"message {i}")
        for name, make in (kinds[i % len(kinds)], kinds[(i + 3) % len(kinds)]):
            m.add_attachment(make(i), maintype="application", subtype="octet-stream",
                             filename=name.format(i=i))
        data = bytes(m)
        (root / f"{i:05d}.eml").write_bytes(data)
        total += len(data)
    return total


def import_once(mail: Path, data: Path, documents: bool) -> float:
    """One import as `mailkeep import` runs it (its worker processes, the setting
    archive.attachment_text on or off), timed."""
    with Archive(data) as archive:
        Settings(archive.master).put("archive.attachment_text", documents)
    t0 = time.perf_counter()
    with Archive(data) as archive:
        Importer(archive).run(read_paths([mail]))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    print(machine(None))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        size = build(work / "mail", opts.messages)
        times: dict[bool, list[float]] = {True: [], False: []}
        for r in range(opts.rounds):
            for documents in (False, True) if r % 2 == 0 else (True, False):
                times[documents].append(import_once(work / "mail", work / f"d{r}{documents}",
                                                    documents))
        off, on = statistics.median(times[False]), statistics.median(times[True])
        print(f"{opts.messages} messages with two attachments each ({size / 1e6:.1f} MB), "
              f"median of {opts.rounds}, as `mailkeep import`: {off:.2f} s without the "
              f"attachments' text ({opts.messages / off:.0f}/s), {on:.2f} s with it "
              f"({opts.messages / on:.0f}/s)")
        # mail archived without the text, read afterwards by the background process
        later = work / "later"
        import_once(work / "mail", later, False)
        with Archive(later) as archive:
            Settings(archive.master).put("archive.attachment_text", True)
            t0 = time.perf_counter()
            got = reindex.run(archive, archive.stores(), reindex.direct(archive),
                              lambda _p, _line: None, lambda: False, 1024 << 20)
            took = time.perf_counter() - t0
        print(f"the same mail archived without the text, then read by IndexAttachmentText: "
              f"{took:.2f} s ({got.messages / took:.0f}/s, {got.changed} given text)")
        for name, data in (("a zip bomb (8 MiB of zeros in 8 KiB)",
                            zipped(**{"z.txt": b"\0" * (8 << 20)})),
                           ("a PDF of 2,000 pages", pdf("page", pages=2000))):
            t0 = time.perf_counter()
            _text, warnings = attachment_text("x", "", data)
            print(f"{name}: {time.perf_counter() - t0:.3f} s"
                  + (f" ({warnings[0]})" if warnings else ""))


if __name__ == "__main__":
    main()
