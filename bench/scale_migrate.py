"""`mailkeep migrate` of a large embedded archive into PostgreSQL + SeaweedFS (S3), then the
same searches on both, on this machine.

Usage: .venv/bin/python bench/scale_migrate.py [--data DIR] [--work DIR]

1. Copies nothing: `--data` (default bench/.work/million-data, the million messages that
   bench/million.py imports; any embedded data directory will do) is migrated as it is (the
   migration leaves its files as they were, but opens its stores to write: no server on it).
2. Starts a private PostgreSQL (fsync and synchronous commit on) and a private SeaweedFS (the
   test peers, tests/peers/) on loopback ports, their data under --work.
3. Runs `mailkeep --data DIR migrate --to URL --objects s3://... --json`: wall time, messages
   per second, the peak memory of the process, and each store's figures.
4. Times bench/million.py's searches in-process on the embedded directory and, as another
   server with only the master key would, on PostgreSQL + objects: one warm-up, then 15 runs,
   p50 and p95 in milliseconds, and the totals.
5. Sizes: the SQLite catalogs against the PostgreSQL database, the segments against the bucket.

Figures go to stdout; one run takes the machine's two cores for an hour at a million messages.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.million import CJK_QUERY  # noqa: E402
from bench.scale import engines, time_searches  # noqa: E402

QUERIES = ["the", "bombarded", '"cache flush"', "from:u0042@example.org", "folder:u0007 kernel",
           "after:2015-03-01 before:2015-04-01", "after:2020-01-01 patch", CJK_QUERY,
           "has:attachment"]


def du(path: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in path.glob(pattern) if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".work" / "million-data")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    data = args.data.resolve()
    if not (data / "mailkeep.db").exists():
        raise SystemExit(f"no embedded installation at {data} (see the docstring)")
    work = Path(args.work or tempfile.mkdtemp(prefix="mailkeep-migrate."))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MAILKEEP_", "AWS_"))}
    base["PYTHONPATH"] = str(ROOT / "src")
    print(f"machine: {os.cpu_count()} cores; migrating {data.name}", flush=True)
    with engines(work, keep=args.work is not None) as (pg, weed):
        url = pg.new_database()
        bucket = weed.new_bucket("bench")
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "mailkeep", "--data", str(data), "migrate",
                               "--to", url, "--objects", bucket, "--json"],
                              env={**base, **weed.env()}, capture_output=True, text=True)
        seconds = time.monotonic() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(done.stderr.strip())
        if done.returncode != 0:
            raise SystemExit(f"migrate failed ({done.returncode})")
        figures = json.loads(done.stdout)
        # the data directory stays the embedded source of the comparison (and of the next
        # run): the engines the migration kept for it are forgotten
        (data / "conf" / "backends.json").unlink(missing_ok=True)
        n = figures["messages"]
        print(f"\nmigrate: {n:,} messages in {seconds:.0f} s ({n / seconds:.0f} msg/s), "
              f"peak RSS {peak:.0f} MB")
        for s in figures["stores"]:
            print(f"  store {s['name']}: {s['messages']:,} messages, {s['leaves']:,} leaves, "
                  f"{s['parts']} objects, {s['uploaded'] / 1e6:,.0f} MB, {s['seconds']} s")
        node = work / "node2"
        (node / "conf").mkdir(parents=True, exist_ok=True)
        shutil.copy(data / "conf" / "master.key", node / "conf" / "master.key")
        scaled = {**base, **weed.env(), "MAILKEEP_DATABASE": url, "MAILKEEP_OBJECTS": bucket}
        results = {"embedded": time_searches(data, base, QUERIES),
                   "postgres+s3": time_searches(node, scaled, QUERIES)}
        print(f"\n{'query':38} {'embedded p50/p95 ms':>22} {'postgres+s3 p50/p95 ms':>24} "
              f"{'totals':>22}")
        for q in QUERIES:
            e, p = results["embedded"][q], results["postgres+s3"][q]
            totals = f"{e[2]:,}{'' if e[3] else '~'} / {p[2]:,}{'' if p[3] else '~'}"
            print(f"{q:38} {e[0]:>10.2f} / {e[1]:<9.2f} {p[0]:>11.2f} / {p[1]:<10.2f} "
                  f"{totals:>22}")
        for name, res in results.items():
            print(f"search p50, median over the queries, {name}: "
                  f"{statistics.median(v[0] for v in res.values()):.2f} ms")
        from mailkeep.core.pgconn import Connection
        conn = Connection(url)
        pg_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        conn.close()
        sqlite = du(data, "stores/*/catalog.sqlite*") + du(data, "mailkeep.db*")
        print(f"\nsizes: SQLite catalogs + master {sqlite / 1e6:,.0f} MB,"
              f" PostgreSQL database {pg_bytes / 1e6:,.0f} MB; segments "
              f"{du(data, 'stores/*/segments/*.seg') / 1e6:,.0f} MB, uploaded "
              f"{sum(s['uploaded'] for s in figures['stores']) / 1e6:,.0f} MB")


if __name__ == "__main__":
    main()
