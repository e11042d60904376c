"""What mail dated alike costs the writer (core/storage/catalog.py, add_entry): a catalog has
256 entry keys for each second, and a flood dated one second takes the keys after it. Anyone
can send such mail, and interleave floods so that each message starts inside a long run of
taken keys. Three workloads on a fresh catalog, each in one transaction, timed per entry:

- distinct: 51,600 entries, each dated its own second (no key is ever taken twice);
- flood: 20,000 entries dated one second;
- interleaved: after that flood, 200 rounds of 257 entries dated one far second (a flood of
  its own) and then one entry dated 3 s after the first flood's second, inside its run.

    .venv/bin/python bench/key_floods.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import machine  # noqa: E402

from mailkeep.core.storage.catalog import Catalog  # noqa: E402

DAY = 1_600_000_000
INDEX = ("", "", "", "", "")


def main() -> None:
    print(machine(None))
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "catalog.sqlite")
        catalog.begin()
        folder = catalog.folder_id("someone", "")
        number = 0

        def add(date: int) -> None:
            nonlocal number
            number += 1
            catalog.add_entry(number, number, folder, [], None, 0, 1, 0, date, INDEX)

        def timed(what: str, dates: list[int]) -> None:
            t = time.perf_counter()
            for d in dates:
                add(d)
            took = time.perf_counter() - t
            print(f"  {what:12} {len(dates):7,} entries  {took:6.2f} s  "
                  f"{took / len(dates) * 1e6:7.1f} us each")

        timed("distinct", [DAY + 10**7 + i for i in range(51_600)])
        timed("flood", [DAY] * 20_000)
        rounds = []
        for i in range(200):
            rounds += [DAY + 10**6 + i] * 257 + [DAY + 3]
        timed("interleaved", rounds)
        catalog.rollback()
        catalog.close()


if __name__ == "__main__":
    main()
