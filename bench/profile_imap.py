"""IMAP archiving profile against a real Dovecot: a mailbox of real messages (the bulk corpus,
in 4 folders) is archived by `RunProfile` in-process; prints messages/s of the first run, the
time of a rerun with nothing new, and of a rerun after 100 new messages. Prints figures;
asserts nothing.

    .venv/bin/python bench/profile_imap.py [--messages 4000]
"""

from __future__ import annotations

import argparse
import gzip
import mailbox
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailkeep.core.masterdb import MasterDB  # noqa: E402
from mailkeep.functions.call import Caller, Services  # noqa: E402
from mailkeep.functions.invoke import Invoker  # noqa: E402
from tests.sources.dovecot import PASSWORD, Dovecot  # noqa: E402

BULK = ROOT.parent / "shared" / "corpus" / "bulk" / "linux-mips"


class Quiet:
    def progress(self, percent: int | None, text: str | None = None) -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def check_cancelled(self) -> None:
        pass


def messages(n: int, tmp: Path) -> list[bytes]:
    out: list[bytes] = []
    for path in sorted(BULK.glob("*.mbox.gz")):
        plain = tmp / path.stem
        plain.write_bytes(gzip.decompress(path.read_bytes()))
        for msg in mailbox.mbox(str(plain)):
            out.append(re.sub(rb"\r\n|\r|\n", b"\r\n", msg.as_bytes()))
            if len(out) >= n:
                return out
    return out


def call(data: Path, name: str, **args: Any) -> Any:
    master = MasterDB.of(data.resolve())
    services = Services(data.resolve(), master)
    try:
        return Invoker(services).call(name, Caller("root", "cli"), native=args, ctx=Quiet())
    finally:
        services.close()
        master.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=4000)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        msgs = messages(opts.messages + 100, tmp)
        first, later = msgs[: opts.messages], msgs[opts.messages:]
        dovecot = Dovecot()
        dovecot.start()
        try:
            user = dovecot.new_user()
            imap = dovecot.admin(user)
            folders = ["INBOX", "Lists", "Lists.linux", "Archiv"]
            for f in folders[1:]:
                imap.create_folder(f)
            t = time.perf_counter()
            for i, raw in enumerate(first):
                imap.append(folders[i % 4], raw)
            fill = time.perf_counter() - t
            size = sum(len(m) for m in first)
            data = tmp / "data"
            call(data, "CreateUser", userName="alice", privileges=["login"])
            prof = call(data, "CreateProfile", raw=False, properties={
                "name": "bench", "type": "imap", "userName": "alice", "host": "127.0.0.1",
                "port": dovecot.imap_port, "security": "none", "login": user,
                "password": PASSWORD})
            runs = []
            for label, add in (("first run", []), ("rerun, nothing new", []),
                               ("rerun, 100 new", later)):
                for raw in add:
                    imap.append("INBOX", raw)
                t = time.perf_counter()
                res = call(data, "RunProfile", id=prof["id"])
                runs.append((label, time.perf_counter() - t, res))
            imap.logout()
        finally:
            dovecot.stop()
    print(f"machine: 2 cores; {len(first)} messages from the bulk corpus in 4 IMAP folders, "
          f"{size / 2**20:.1f} MB (filling Dovecot took {fill:.1f} s)")
    for label, seconds, res in runs:
        print(f"  {label}: {seconds:.2f} s, {res['result']}, archived {res['itemsArchived']}, "
              f"duplicates {res['itemsDuplicate']}, failed {res['itemsFailed']}"
              + (f"; {res['itemsArchived'] / seconds:.0f} messages/s, "
                 f"{res['bytesRead'] / seconds / 2**20:.1f} MB/s" if res["itemsArchived"] > 500
                 else ""))


if __name__ == "__main__":
    main()
