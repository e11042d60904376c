"""The same messages on the embedded default and on PostgreSQL + SeaweedFS (S3), on this machine.

Usage: .venv/bin/python bench/scale.py [--maildir DIR] [--work DIR]

1. Starts a private PostgreSQL (fsync and synchronous commit on, as in production) and a
   private SeaweedFS (the test peers, tests/peers/), both on loopback ports of this machine,
   their data in temporary directories.
2. Imports the Maildir (default bench/.work/Maildir-14000, made by bench/million.py's and
   bench/import_search.py's recipes; any Maildir will do) with the real command line,
   `mailkeep --data D import MAILDIR`, once into a fresh embedded data directory and once into a
   fresh installation on PostgreSQL + objects; wall time and messages per second.
3. Times searches in-process through Archive.search(query, limit=20) on each: one warm-up, then
   15 runs; p50 and p95 in milliseconds, and the totals (which must agree).

Figures go to stdout; the engines share the machine's two cores with the import, so compare
the two columns of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.peers.postgres import Postgres  # noqa: E402
from tests.peers.seaweed import Seaweed  # noqa: E402

QUERIES = ["the", "kernel", '"cache flush"', "from:ralf", "subject:patch", "mips -linux",
           "after:2003-01-01 patch", "has:attachment", "bombarded", "ioctl OR syscall"]
RUNS = 15


def run_import(data: Path, maildir: Path, env: dict[str, str]) -> tuple[float, int]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mailkeep", "--data", str(data), "import",
                           str(maildir)], env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"import failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    line = [ln for ln in done.stdout.splitlines() if "archived" in ln][-1]
    return seconds, int(line.split()[0])


def time_searches(data: Path, env: dict[str, str], queries: list[str] | None = None
                  ) -> dict[str, tuple[float, float, int, bool]]:
    """query -> (p50 ms, p95 ms, total, exact), in a child process with the environment."""
    code = (
        "import json, statistics, sys, time\n"
        "from pathlib import Path\n"
        "from mailkeep.core.archive import Archive\n"
        f"queries = {queries or QUERIES!r}\n"
        "out = {}\n"
        f"with Archive(Path({str(data)!r})) as a:\n"
        "    for q in queries:\n"
        "        r = a.search(q, 20)\n"
        "        times = []\n"
        f"        for _ in range({RUNS}):\n"
        "            t = time.perf_counter(); r = a.search(q, 20)\n"
        "            times.append((time.perf_counter() - t) * 1000)\n"
        "        times.sort()\n"
        "        out[q] = [statistics.median(times), times[int(len(times) * 0.95) - 1],\n"
        "                  r.total, r.exact]\n"
        "print(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"searches failed: {done.stderr[-3000:]}")
    import json
    return {q: tuple(v) for q, v in json.loads(done.stdout.splitlines()[-1]).items()}


@contextmanager
def engines(work: Path, keep: bool) -> Iterator[tuple[Postgres, Seaweed]]:
    """A private PostgreSQL (durable, as in production) and SeaweedFS for the block; `work`
    removed after it unless `keep`."""
    pg = Postgres(durable=True).start()
    weed = Seaweed().start()
    try:
        yield pg, weed
    finally:
        weed.stop()
        pg.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--maildir", type=Path, default=ROOT / "bench" / ".work" / "Maildir-14000")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    if not args.maildir.is_dir():
        raise SystemExit(f"no Maildir at {args.maildir} (see the docstring)")
    work = Path(args.work or tempfile.mkdtemp(prefix="mailkeep-scale."))
    messages = sum(1 for _ in (args.maildir / "cur").iterdir())
    print(f"machine: {os.cpu_count()} cores; {messages} messages in {args.maildir}")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MAILKEEP_", "AWS_"))}
    base["PYTHONPATH"] = str(ROOT / "src")
    with engines(work, keep=args.work is not None) as (pg, weed):
        url = pg.new_database()
        bucket = weed.new_bucket("bench")
        scaled = {**base, **weed.env(), "MAILKEEP_DATABASE": url, "MAILKEEP_OBJECTS": bucket}
        results = {}
        for name, env in (("embedded", base), ("postgres+s3", scaled)):
            data = work / name
            shutil.rmtree(data, ignore_errors=True)
            seconds, archived = run_import(data, args.maildir, env)
            print(f"{name}: imported {archived} in {seconds:.1f} s "
                  f"({archived / seconds:.0f} msg/s)", flush=True)
            results[name] = (seconds, archived, time_searches(data, env))
        print()
        print(f"{'query':28} {'embedded p50/p95 ms':>22} {'postgres+s3 p50/p95 ms':>24} "
              f"{'totals':>16}")
        for q in QUERIES:
            e = results["embedded"][2][q]
            p = results["postgres+s3"][2][q]
            totals = f"{e[2]}{'' if e[3] else '~'} / {p[2]}{'' if p[3] else '~'}"
            print(f"{q:28} {e[0]:>10.2f} / {e[1]:<9.2f} {p[0]:>11.2f} / {p[1]:<10.2f} "
                  f"{totals:>16}")
        ratio = results["postgres+s3"][0] / results["embedded"][0]
        print(f"\nimport time postgres+s3 / embedded: {ratio:.2f}x")
        print(f"search p50, median over the queries: embedded "
              f"{statistics.median(v[0] for v in results['embedded'][2].values()):.2f} ms, "
              f"postgres+s3 "
              f"{statistics.median(v[0] for v in results['postgres+s3'][2].values()):.2f} ms")


if __name__ == "__main__":
    main()
