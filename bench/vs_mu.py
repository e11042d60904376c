"""mailkeep against mu (maildir-utils) on the same Maildir, in one run: the import against
`mu index`, and searches as whole processes (`mailkeep search` against `mu find`), with
`mailkeep --help` beside them. See bench/README.md.

    .venv/bin/python bench/vs_mu.py [--work DIR] [--messages N] [--runs N] [--keep]

The Maildir is import_search.py's (the linux-mips corpus, 49,445 messages), or its first N
messages (hard links). mu must be installed (Debian: maildir-utils); hyperfine is not needed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import import_search as base  # noqa: E402  (the inputs, the process-tree sampler)

QUERIES = [("common word", "the"), ("rare word", base.RARE_WORD), ("sender", "from:ralf"),
           ("phrase", '"cache flush"'), ("word + date", "kernel after:2010-01-01")]
# mu's query language for the same searches
MU_QUERIES = {"the": "the", base.RARE_WORD: base.RARE_WORD, "from:ralf": "from:ralf",
              '"cache flush"': '"cache flush"', "kernel after:2010-01-01": "kernel date:2010..",
              }
TARGET_IMPORT_RATIO = 2.5  # mailkeep's messages/s over mu's, at least
TARGET_CLI_MS = 60.0  # median of a whole `mailkeep search` / `mailkeep --help`
TARGET_CLI_RATIO = 3.0  # mailkeep search over mu find, at most


@dataclass
class Timed:
    wall: float
    peak_rss: int
    cpu: float
    code: int


def timed(cmd: list[str], env: dict[str, str] | None = None) -> Timed:
    """A command as a child process: wall time, the peak RSS of its process tree (sampled),
    its CPU seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env)
    sampler = base.TreeSampler(proc.pid)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    sampler.stop()
    cpu = max(sum(sampler.cpu.values()), usage.ru_utime + usage.ru_stime)
    return Timed(wall, max(sampler.peak_rss, usage.ru_maxrss * 1024), cpu,
                 os.waitstatus_to_exitcode(status))


def whole_process_ms(cmd: list[str], runs: int) -> tuple[float, float]:
    """(median, p95) in ms of a short command run `runs` times after one warm-up."""
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(round(0.95 * len(times))) - 1)]


def subset(maildir: Path, n: int, work: Path) -> Path:
    """The first n messages of maildir (by name), as hard links in a Maildir of their own."""
    out = work / f"Maildir-{n}"
    names = sorted(os.listdir(maildir / "cur"))[:n]
    if (out / "cur").is_dir() and len(os.listdir(out / "cur")) == len(names):
        return out
    shutil.rmtree(out, ignore_errors=True)
    for sub in ("cur", "new", "tmp"):
        (out / sub).mkdir(parents=True)
    for name in names:
        os.link(maildir / "cur" / name, out / "cur" / name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=base.DEFAULT_WORK)
    ap.add_argument("--messages", type=int, default=0, help="only the first N messages")
    ap.add_argument("--runs", type=int, default=20, help="runs of each whole-process search")
    ap.add_argument("--keep", action="store_true", help="keep the mu and mailkeep data")
    args = ap.parse_args()
    if shutil.which("mu") is None:
        sys.exit("mu is not installed (Debian: apt-get install maildir-utils)")
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    info = base.machine_info()
    for line in info:
        base.say(line)
    mbox = base.prepare_mbox(work, base.CORPUS)
    maildir = base.prepare_maildir(work, mbox).path
    if args.messages:
        maildir = subset(maildir, args.messages, work)
    count = len(os.listdir(maildir / "cur"))
    raw = sum(p.stat().st_size for p in (maildir / "cur").iterdir())
    mu_version = subprocess.run(["mu", "--version"], capture_output=True, text=True
                                ).stdout.splitlines()[0]
    base.say(f"{mu_version}; Maildir {maildir} ({count:,} messages, {base.mb(raw)})")

    muhome, data = work / "vs-mu-home", work / "vs-mu-data"
    shutil.rmtree(muhome, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run(["mu", "init", f"--muhome={muhome}", f"--maildir={maildir}"], check=True,
                   stdout=subprocess.DEVNULL)
    base.say("mu index ...")
    mu = timed(["mu", "index", f"--muhome={muhome}"])
    base.say(f"  {mu.wall:.1f} s, CPU {mu.cpu:.1f} s, peak RSS {base.mb(mu.peak_rss)}")
    base.say("mailkeep import ...")
    mk = timed([*base.mailkeep_command(), "--data", str(data), "import", str(maildir)])
    base.say(f"  {mk.wall:.1f} s, CPU {mk.cpu:.1f} s, peak RSS {base.mb(mk.peak_rss)}")
    if mk.code != 0 or mu.code != 0:
        base.say(f"WARNING: exit codes mailkeep {mk.code}, mu {mu.code}")
    mu_bytes = sum(p.stat().st_size for p in muhome.rglob("*") if p.is_file())
    disk = base.disk_usage(data)

    ratio = mu.wall / mk.wall
    rows = [["", "mu index", "mailkeep import", "ratio", "target"],
            ["wall", f"{mu.wall:.1f} s", f"{mk.wall:.1f} s", f"{ratio:.2f}x",
             f">= {TARGET_IMPORT_RATIO}x {base.verdict(ratio >= TARGET_IMPORT_RATIO)}"],
            ["messages/s", f"{count / mu.wall:,.0f}", f"{count / mk.wall:,.0f}", "", ""],
            ["CPU", f"{mu.cpu:.1f} s", f"{mk.cpu:.1f} s", f"{mu.cpu / max(mk.cpu, 1e-9):.2f}x",
             ""],
            ["peak RSS (tree)", base.mb(mu.peak_rss), base.mb(mk.peak_rss), "",
             f"< {base.mb(base.TARGET_RSS)} "
             f"{base.verdict(mk.peak_rss < base.TARGET_RSS)}"],
            ["on disk", f"{base.mb(mu_bytes)} ({mu_bytes / raw:.3f}x)",
             f"{base.mb(disk.total)} ({disk.total / raw:.3f}x)", "", ""]]
    base.say()
    base.say("IMPORT  (one run each, the same Maildir, mu first)")
    for line in base.table(rows, right=(1, 2, 3)):
        base.say("  " + line)

    mailkeep = base.mailkeep_command()
    rows = [["query", "mu find", "mailkeep search", "ratio", "target"]]
    worst_ms, worst_ratio = 0.0, 0.0
    for label, query in QUERIES:
        mu_ms = whole_process_ms(["mu", "find", f"--muhome={muhome}", "--maxnum=50",
                                  MU_QUERIES[query]], args.runs)
        mk_ms = whole_process_ms([*mailkeep, "--data", str(data), "search", *query.split(),
                                  "--limit", "50"], args.runs)
        worst_ms = max(worst_ms, mk_ms[0])
        worst_ratio = max(worst_ratio, mk_ms[0] / mu_ms[0])
        rows.append([f"{label}: {query}", f"{mu_ms[0]:.1f} / {mu_ms[1]:.1f}",
                     f"{mk_ms[0]:.1f} / {mk_ms[1]:.1f}", f"{mk_ms[0] / mu_ms[0]:.2f}x", ""])
    help_ms = whole_process_ms([*mailkeep, "--help"], args.runs)
    rows.append(["mailkeep --help", "", f"{help_ms[0]:.1f} / {help_ms[1]:.1f}", "", ""])
    base.say()
    base.say(f"SEARCH as whole processes  (ms, median / p95 of {args.runs} runs after one "
             "warm-up; first 50, mailkeep with its total count)")
    for line in base.table(rows, right=(1, 2, 3)):
        base.say("  " + line)
    base.say()
    base.say("SUMMARY")
    base.say(f"  import at least {TARGET_IMPORT_RATIO}x mu index: {ratio:.2f}x "
             f"{base.verdict(ratio >= TARGET_IMPORT_RATIO)}")
    base.say(f"  mailkeep search median <= {TARGET_CLI_MS:.0f} ms: slowest {worst_ms:.1f} ms "
             f"{base.verdict(worst_ms <= TARGET_CLI_MS)}")
    base.say(f"  mailkeep --help median <= {TARGET_CLI_MS:.0f} ms: {help_ms[0]:.1f} ms "
             f"{base.verdict(help_ms[0] <= TARGET_CLI_MS)}")
    base.say(f"  mailkeep search <= {TARGET_CLI_RATIO:.0f}x mu find: worst {worst_ratio:.2f}x "
             f"{base.verdict(worst_ratio <= TARGET_CLI_RATIO)}")
    if not args.keep:
        shutil.rmtree(muhome, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
