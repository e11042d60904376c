"""The readers mailkeep uses for the text inside attachments (core/mime/documents.py) against
kreuzberg, a Rust library of the field that reads them all, on the same documents (written by
the libraries that write them, as in attachments.py): time per document and what each found.
kreuzberg is not a dependency of mailkeep: install it into the venv to compare
(`.venv/bin/pip install kreuzberg`); without it only mailkeep's readers are timed."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from soak import machine  # noqa: E402

from mailkeep.core.mime.documents import attachment_text  # noqa: E402
from tests.core.test_documents import odt, pdf, sheet, slides, word  # noqa: E402

MIME = {"pdf": "application/pdf",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt": "application/vnd.oasis.opendocument.text"}


def timed(read: Callable[[str, bytes], str], name: str, data: bytes, rounds: int = 20
          ) -> tuple[float, str]:
    text = read(name, data)
    t0 = time.perf_counter()
    for _ in range(rounds):
        text = read(name, data)
    return (time.perf_counter() - t0) / rounds * 1000, text


def main() -> None:
    print(machine(None))
    docs = {"invoice.pdf": pdf("Invoice 4711 total due", pages=3),
            "contract.docx": word("Contract 4712 between the parties " * 20),
            "orders.xlsx": sheet("order 4713", rows=200), "pitch.pptx": slides("Pitch 4714"),
            "letter.odt": odt("Letter 4715")}
    readers: dict[str, Callable[[str, bytes], str]] = {
        "mailkeep": lambda name, data: attachment_text(name, "", data)[0]}
    try:
        import kreuzberg
        readers["kreuzberg"] = lambda name, data: str(kreuzberg.extract_bytes_sync(
            data, MIME[name.rsplit(".", 1)[1]]).content)
    except ImportError:
        print("kreuzberg is not installed: mailkeep's readers only")
    for name, data in docs.items():
        line = [f"{name:14s} {len(data):7,d} bytes"]
        for who, read in readers.items():
            ms, text = timed(read, name, data)
            line.append(f"{who} {ms:6.1f} ms ({len(text)} chars"
                        f"{', number found' if '471' in text else ''})")
        print("  ".join(line))


if __name__ == "__main__":
    main()
