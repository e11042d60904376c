"""What the audit log's hash chain costs: records written per second with the chain (the
previous link read and the new one written in one transaction) against the plain insert it
replaced, in one run on the same disk; and how long `VerifyAuditLog` takes over the log."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import machine  # noqa: E402

from mailkeep.core.masterdb import MasterDB  # noqa: E402


def plain_writes(master: MasterDB, n: int) -> float:
    """The insert as it was before the chain (autocommit, no link)."""
    t0 = time.perf_counter()
    for i in range(n):
        master.conn.execute("INSERT INTO audit (at, actor, action, details) VALUES (?,?,?,?)",
                            (int(time.time()), "cli:bench", "bench.plain",
                             json.dumps({"i": i, "args": {"name": f"store {i}"}},
                                        sort_keys=True)))
    return n / (time.perf_counter() - t0)


def chained_writes(master: MasterDB, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        master.audit.write("cli:bench", "bench.chained", i=i, args={"name": f"store {i}"})
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--log", type=int, default=200_000, help="records in the verified log")
    opts = ap.parse_args()
    print(machine(None))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        master = MasterDB.of(data)
        try:
            rounds = [(plain_writes(master, opts.records // 4),
                       chained_writes(master, opts.records // 4)) for _ in range(2)]
            plain = max(p for p, _ in rounds)
            chained = max(c for _, c in rounds)
            print(f"audit records written: {plain:,.0f}/s plain insert, {chained:,.0f}/s with "
                  f"the chain ({chained / plain:.0%} of plain; best of 2 rounds of "
                  f"{opts.records // 4:,} each)")
            master.conn.execute("DELETE FROM audit")
            for start in range(0, opts.log, 10_000):
                with master.tx():  # written in batches: only the verify is measured here
                    for i in range(start, min(start + 10_000, opts.log)):
                        master.audit.write("cli:bench", "bench.log", i=i)
            t0 = time.perf_counter()
            report = master.audit.verify()
            took = time.perf_counter() - t0
            assert not report.problems, report.problems[:3]
            size = sum(p.stat().st_size for p in data.glob("mailkeep.db*"))
            print(f"VerifyAuditLog over {report.records:,} records: {took:.2f} s "
                  f"({report.records / took:,.0f} records/s); master database "
                  f"{size / 1048576:.1f} MB (64 hex digits of chain a record)")
        finally:
            master.close()


if __name__ == "__main__":
    main()
