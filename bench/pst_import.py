"""What importing an Outlook PST costs, next to the same messages as .eml files: a PST the
benchmark writes (tests/pstfile.py, real PSTs that libpff and libpst both read) of `--messages`
mail items in a few folders, plain and HTML bodies, recipients, and every fourth with an
attachment of a few hundred kilobytes; the importer builds each item into its message. Both
imports run as `mailkeep import` does, into fresh data directories, alternately; then the peak
resident memory of a `mailkeep import` of the PST in a process of its own."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from soak import machine  # noqa: E402

from mailkeep.core.archive import Archive  # noqa: E402
from mailkeep.core.ingest import Importer  # noqa: E402
from mailkeep.sources.detect import read_paths  # noqa: E402
from mailkeep.sources.pst import read_pst  # noqa: E402
from tests.pstfile import (  # noqa: E402
    MAPI_TO,
    PR_ADDRTYPE,
    PR_ATTACH_LONG_FILENAME,
    PR_BODY,
    PR_DISPLAY_NAME,
    PR_EMAIL_ADDRESS,
    PR_HTML,
    PR_INTERNET_MESSAGE_ID,
    PR_MESSAGE_DELIVERY_TIME,
    PR_RECIPIENT_TYPE,
    PR_SENDER_EMAIL_ADDRESS,
    PR_SENDER_NAME,
    PR_SUBJECT,
    Attachment,
    Folder,
    Message,
    write_pst,
)

START = datetime(2015, 1, 1, tzinfo=UTC)


def items(first: int, count: int) -> Iterator[Message]:
    for i in range(first, first + count):
        body = f"Message {i}\r\n" + "A line of an ordinary business letter. " * 40
        m = Message({PR_SUBJECT: f"Status report {i}", PR_BODY: body,
                     PR_HTML: f"<html><body><p>{body}</p></body></html>".encode(),
                     PR_SENDER_NAME: f"Sender {i % 50}",
                     PR_SENDER_EMAIL_ADDRESS: f"sender{i % 50}@example.com",
                     PR_INTERNET_MESSAGE_ID: f"<bench-{i}@example.com>",
                     PR_MESSAGE_DELIVERY_TIME: START + timedelta(hours=i)},
                    recipients=[{PR_DISPLAY_NAME: "Alice", PR_EMAIL_ADDRESS: "alice@example.com",
                                 PR_ADDRTYPE: "SMTP", PR_RECIPIENT_TYPE: MAPI_TO}])
        if i % 4 == 0:
            m.attachments = [Attachment({PR_ATTACH_LONG_FILENAME: f"scan-{i}.bin"},
                                        data=i.to_bytes(4, "big") * 60_000)]
        yield m


PEAK = ("import resource, sys\n"
        "from mailkeep.cli import main\n"
        "sys.argv = ['mailkeep', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def timed_import(source: Path, data: Path) -> float:
    t0 = time.perf_counter()
    with Archive(data) as archive:
        Importer(archive).run(read_paths([source]))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    print(machine(None))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pst = work / "bench.pst"
        per = opts.messages // 4
        t0 = time.perf_counter()
        layout = write_pst(pst, [Folder("Inbox", items(0, per), [
            Folder("Projects", items(per, per))]), Folder("Sent Items", items(2 * per, per)),
            Folder("Archive", items(3 * per, opts.messages - 3 * per))])
        print(f"PST of {opts.messages} items written: {layout.file_size / 1e6:.1f} MB in "
              f"{time.perf_counter() - t0:.1f} s")
        emls = work / "eml"
        emls.mkdir()
        t0 = time.perf_counter()
        built = 0
        for n, item in enumerate(read_pst(pst, "")):
            data = getattr(item, "data", None)
            if data is not None:
                (emls / f"{n:06d}.eml").write_bytes(data)
                built += len(data)
        read_s = time.perf_counter() - t0
        print(f"read and built from the PST alone: {opts.messages / read_s:.0f} items/s "
              f"({built / 1e6:.1f} MB of messages)")
        times: dict[str, list[float]] = {"pst": [], "eml": []}
        for r in range(opts.rounds):
            for kind in ("pst", "eml") if r % 2 == 0 else ("eml", "pst"):
                source = pst if kind == "pst" else emls
                times[kind].append(timed_import(source, work / f"d-{kind}-{r}"))
        pst_s, eml_s = statistics.median(times["pst"]), statistics.median(times["eml"])
        print(f"mailkeep import, median of {opts.rounds}: the PST {pst_s:.2f} s "
              f"({opts.messages / pst_s:.0f} msg/s), the same messages as .eml files "
              f"{eml_s:.2f} s ({opts.messages / eml_s:.0f} msg/s): {pst_s / eml_s:.2f}x")
        done = subprocess.run([sys.executable, "-c", PEAK, "--data", str(work / "d-peak"),
                               "import", str(pst)], capture_output=True, check=True)
        peak = int(done.stderr.decode().split()[-1])
        print(f"peak resident memory of `mailkeep import` of the PST: {peak / 1024:.0f} MiB "
              f"(the file: {layout.file_size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
