"""Import and search benchmark on the linux-mips bulk corpus (49,445 messages, 281 MB).

Usage: .venv/bin/python bench/import_search.py [--work DIR] [--only mbox|maildir] [--keep]

1. Prepares the inputs once in the work directory (default bench/.work, git-ignored): the 18
   mboxes of ../shared/corpus/bulk/linux-mips gunzipped (one file per year), and a Maildir made
   from them by the corpus README's recipe (Maildir/cur/<unique>:2,S). Prepared inputs are
   reused when their file counts and sizes match what was written.
2. For each input: imports it into a fresh data directory with the real command line,
   `mailkeep --data D import INPUT --jsonl`, as a child process, and measures wall time, the peak
   RSS of the whole process tree (sampled from /proc every 50 ms, PSS every second: the import
   starts parser processes through a multiprocessing forkserver) and the main process's own
   peak RSS.
3. Measures the bytes on disk: segments, catalog, and within the catalog the full-text index
   (fts_* tables, from SQLite's dbstat) against the rest, each as a ratio of the input size.
4. Times searches in-process through Archive.search(query, limit=20): one cold run on a fresh
   Archive with the catalog dropped from the OS page cache, then 20 runs after one warm-up.

It prints machine information, progress, and a table of the figures with the targets of the
benchmark issue next to them. A missed target is reported, never an error: the exit status is 0
unless the benchmark itself cannot run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "bulk" / "linux-mips"
DEFAULT_WORK = REPO / "bench" / ".work"

EXPECTED_MESSAGES = 49_445
EXPECTED_MBOX_FILES = 18
# The gunzipped files total 281,157,704 bytes; the corpus README's table says 281,161,800.
EXPECTED_MBOX_BYTES = 281_157_704
SEPARATOR = b"From mboxrd@z Thu Jan  1 00:00:00 1970\n"
UNESCAPE = re.compile(rb"^>(>*From )", re.MULTILINE)

MB = 1_000_000  # every "MB" printed here is 10^6 bytes, as in the corpus README
SAMPLE_SECONDS = 0.05
PSS_EVERY = 20  # samples: reading smaps_rollup costs ~1.5 ms a process, RSS ~0.02 ms
SEARCH_RUNS = 20
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")

# Targets from the benchmark issue.
TARGET_RATE = 1_000  # messages/s, at least
TARGET_DISK_RATIO = 1.0  # segments + catalog + index, below the raw input size
TARGET_SEARCH_MS = 50.0  # median, first page with total count
TARGET_RSS = 300 * MB  # peak RSS of the import
# Reference figures from the issue (same machines, same corpus).
REFERENCES = "notmuch new: ~200 messages/s, index 2.3x the mail; mu index: ~400/s, 1.2x"

# A word in only a handful of messages of this corpus (6 of them: found with fts5vocab).
RARE_WORD = "bombarded"
QUERIES: list[tuple[str, str]] = [
    ("common word", "the"),
    ("rare word", RARE_WORD),
    ("from: filter", "from:ralf"),
    ("phrase", '"cache flush"'),
    ("folder + word", "folder:linux-mips-2005 kernel"),
    ("has:attachment", "has:attachment"),
    ("date + word", "after:2010-01-01 kernel"),
]


def shown(path: object) -> str:
    """A path as printed: relative to the repository, so that output can be shared."""
    text = str(path)
    root = str(Path(__file__).resolve().parents[1]) + "/"
    return text.replace(root, "")


def say(text: str = "") -> None:
    print(text, flush=True)


def mb(n: float) -> str:
    return f"{n / MB:,.1f} MB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -- machine -------------------------------------------------------------------------------
def machine_info() -> list[str]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) * 1024 / 1e9:.1f} GB RAM"
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    try:
        import zstandard

        zstd = f", zstandard {zstandard.__version__}"
    except ImportError:
        zstd = ""
    from mailkeep import __version__

    try:
        load = "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "load average unknown"
    return [
        f"machine: {model}, {os.cpu_count()} cores ({usable} usable){mem}, "
        f"{platform.system()} {platform.release()}, {load} at the start",
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}{zstd}, "
        f"mailkeep {__version__} ({git_state()})",
    ]


def git_state() -> str:
    """The commit and whether src/ has uncommitted changes (read-only git commands)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(REPO), "status",
                                "--porcelain", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "git: unknown"
    return f"git {head}" + (", src/ has uncommitted changes" if dirty else "")


# -- inputs --------------------------------------------------------------------------------
@dataclass
class Input:
    name: str
    path: Path
    files: int
    messages: int
    bytes: int


def _manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def split_mbox(data: bytes) -> list[bytes]:
    """The corpus README's recipe: split on the public-inbox From_ line, drop the last part's
    trailing blank line, undo the mboxrd escaping."""
    if not data.startswith(SEPARATOR):
        raise ValueError("not a public-inbox mboxrd file")
    parts = data[len(SEPARATOR):].split(b"\n" + SEPARATOR)
    if parts[-1].endswith(b"\n"):
        parts[-1] = parts[-1][:-1]
    return [UNESCAPE.sub(rb"\1", p) for p in parts]


def prepare_mbox(work: Path, corpus: Path) -> Input:
    out, manifest_path = work / "mbox", work / "mbox.json"
    sources = sorted(corpus.glob("linux-mips-*.mbox.gz"))
    if len(sources) != EXPECTED_MBOX_FILES:
        sys.exit(f"error: expected {EXPECTED_MBOX_FILES} mboxes in {corpus}, "
                 f"found {len(sources)}")
    manifest = _manifest(manifest_path)
    if manifest is not None and out.is_dir():
        want: dict[str, int] = manifest.get("sizes", {})
        have = {p.name: p.stat().st_size for p in out.iterdir()}
        if have == want and manifest.get("messages") == EXPECTED_MESSAGES:
            say(f"mbox input: reusing {shown(out)} ({len(have)} files, "
                f"{mb(sum(have.values()))})")
            return Input("mbox", out, len(have), EXPECTED_MESSAGES, sum(have.values()))
    say(f"mbox input: gunzipping {len(sources)} files into {out} ...")
    shutil.rmtree(out, ignore_errors=True)
    manifest_path.unlink(missing_ok=True)
    partial = work / "mbox.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    sizes: dict[str, int] = {}
    messages = 0
    for src in sources:
        with gzip.open(src) as f:
            data = f.read()
        name = src.name[: -len(".gz")]
        (partial / name).write_bytes(data)
        sizes[name] = len(data)
        messages += data.count(b"\n" + SEPARATOR) + 1
    total = sum(sizes.values())
    if total != EXPECTED_MBOX_BYTES or messages != EXPECTED_MESSAGES:
        say(f"WARNING: the mboxes hold {messages:,} messages in {total:,} bytes, expected "
            f"{EXPECTED_MESSAGES:,} in {EXPECTED_MBOX_BYTES:,}")
    partial.rename(out)
    manifest_path.write_text(json.dumps({"sizes": sizes, "messages": messages}, indent=1))
    return Input("mbox", out, len(sizes), messages, total)


def maildir_count(path: Path) -> tuple[int, int]:
    n = size = 0
    with os.scandir(path / "cur") as it:
        for entry in it:
            n += 1
            size += entry.stat().st_size
    return n, size


def prepare_maildir(work: Path, mbox: Input) -> Input:
    out, manifest_path = work / "Maildir", work / "Maildir.json"
    manifest = _manifest(manifest_path)
    if (manifest is not None and (out / "cur").is_dir()
            and not any((out / "new").iterdir()) and not any((out / "tmp").iterdir())):
        n, size = maildir_count(out)
        if (n, size) == (manifest.get("messages"), manifest.get("bytes")) and n == mbox.messages:
            say(f"Maildir input: reusing {shown(out)} ({n:,} messages, {mb(size)})")
            return Input("Maildir", out, n, n, size)
    say(f"Maildir input: splitting the mboxes into {out}/cur ...")
    shutil.rmtree(out, ignore_errors=True)
    manifest_path.unlink(missing_ok=True)
    partial = work / "Maildir.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for sub in ("cur", "new", "tmp"):
        (partial / sub).mkdir(parents=True)
    n = size = 0
    for mbox_file in sorted(mbox.path.iterdir()):
        year = mbox_file.name.removeprefix("linux-mips-").removesuffix(".mbox")
        for message in split_mbox(mbox_file.read_bytes()):
            n += 1
            # <unique>: a sequence number (names sort in corpus order), the year, a host tag
            (partial / "cur" / f"{n:06d}.Y{year}.mailkeep-bench:2,S").write_bytes(message)
            size += len(message)
    if n != EXPECTED_MESSAGES:
        say(f"WARNING: the Maildir has {n:,} messages, expected {EXPECTED_MESSAGES:,}")
    partial.rename(out)
    manifest_path.write_text(json.dumps({"messages": n, "bytes": size}))
    return Input("Maildir", out, n, n, size)


# -- process-tree memory -------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        with os.scandir(f"/proc/{pid}/task") as tasks:
            for task in tasks:
                try:
                    with open(f"{task.path}/children") as f:
                        kids.extend(int(x) for x in f.read().split())
                except OSError:
                    pass
    except OSError:
        pass
    return kids


def _children_by_scan() -> Callable[[int], list[int]]:
    """For kernels without /proc/PID/task/TID/children: parent links from /proc/*/stat."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    return lambda pid: parents.get(pid, [])


def process_tree(root: int) -> list[int]:
    children: Callable[[int], list[int]] = _children
    if not Path(f"/proc/{root}/task/{root}/children").exists():
        children = _children_by_scan()
    seen: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(children(pid))
    return seen


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def _cpu(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def system_busy() -> float:
    """CPU seconds all processors have spent busy since boot (/proc/stat, not idle/iowait)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the summed RSS (and now and then PSS) of a process and all its descendants."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_rss = 0
        self.peak_pss = 0
        self.main_hwm = 0  # VmHWM of the root: its own ru_maxrss
        self.cpu: dict[int, float] = {}  # last CPU seconds seen of each process in the tree
        self.max_processes = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(SAMPLE_SECONDS)

    def sample(self) -> None:
        pids = process_tree(self.root)
        sizes = [_rss(p) for p in pids]
        rss = sum(sizes)
        if self.samples % PSS_EVERY == 0:
            self.peak_pss = max(self.peak_pss, sum(_pss(p) for p in pids))
        hwm = _status_kb(self.root, "VmHWM:")
        self.peak_rss = max(self.peak_rss, rss)
        self.main_hwm = max(self.main_hwm, hwm)
        self.max_processes = max(self.max_processes, sum(1 for x in sizes if x))
        for p in pids:
            self.cpu[p] = max(self.cpu.get(p, 0.0), _cpu(p))
        self.samples += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


# -- import --------------------------------------------------------------------------------
@dataclass
class ImportResult:
    input: Input
    data_dir: Path
    wall: float
    exit_code: int
    summary: dict[str, Any]
    peak_rss: int
    peak_pss: int
    main_hwm: int
    wait4_maxrss: int
    max_processes: int
    tree_cpu: float  # CPU seconds of the import's processes
    other_cpu: float  # CPU seconds of everything else meanwhile, kernel threads included
    samples: int
    failures: list[str] = field(default_factory=list)

    @property
    def archived(self) -> int:
        return int(self.summary.get("archived", -1))

    @property
    def rate(self) -> float:
        return self.input.messages / self.wall

    @property
    def mb_per_s(self) -> float:
        return self.input.bytes / MB / self.wall


def mailkeep_command() -> list[str]:
    script = Path(sys.executable).parent / "mailkeep"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from mailkeep.cli import main; main()"]


def run_import(inp: Input, work: Path) -> ImportResult:
    data = work / f"data-{inp.name.lower()}"
    shutil.rmtree(data, ignore_errors=True)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / f"import-{inp.name.lower()}.jsonl", logs / f"import-{inp.name}.err"
    cmd = [*mailkeep_command(), "--data", str(data), "import", str(inp.path), "--jsonl"]
    say(f"importing {inp.name}: {' '.join(shown(c) for c in cmd)}")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        busy = system_busy()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        sampler.stop()
        busy = system_busy() - busy
        proc.returncode = os.waitstatus_to_exitcode(status)
    summary: dict[str, Any] = {}
    failures: list[str] = []
    with open(out_path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "summary" in rec:
                summary = rec["summary"]
            elif rec.get("status") == "failed" and len(failures) < 5:
                failures.append(f"{rec.get('origin')}: {rec.get('reason')}")
    stderr_tail = err_path.read_text(errors="replace").strip().splitlines()[-5:]
    if proc.returncode != 0:
        say(f"  WARNING: the import exited with status {proc.returncode}")
        for line in stderr_tail:
            say(f"  stderr: {line}")
    tree_cpu = sum(sampler.cpu.values())
    res = ImportResult(inp, data, wall, proc.returncode, summary, sampler.peak_rss,
                       sampler.peak_pss, sampler.main_hwm, usage.ru_maxrss * 1024,
                       sampler.max_processes, tree_cpu,
                       max(busy - tree_cpu, 0.0), sampler.samples, failures)
    say(f"  {res.archived:,} archived in {wall:.1f} s ({res.rate:,.0f} messages/s), "
        f"peak RSS of the process tree {mb(res.peak_rss)}; CPU {res.tree_cpu:.1f} s, "
        f"everything else {res.other_cpu:.1f} s")
    if res.archived != inp.messages:
        say("")
        say("  " + "!" * 76)
        say(f"  !! WARNING: {res.archived:,} messages archived, expected {inp.messages:,} "
            f"(duplicates {summary.get('duplicates')}, failed {summary.get('failed')}, "
            f"skipped {summary.get('skipped')})")
        for line in failures:
            say(f"  !! {line}")
        say("  " + "!" * 76)
        say("")
    return res


# -- bytes on disk -------------------------------------------------------------------------
@dataclass
class DiskUsage:
    segments: int
    wal_after_import: int  # catalog.sqlite-wal as the import left it
    catalog: int  # catalog.sqlite + -wal after a checkpoint
    index: int  # pages of the fts_* tables
    tables: dict[str, int]
    other: int  # everything else in the data directory (master db, manifests, lock, conf)

    @property
    def catalog_rest(self) -> int:
        return self.catalog - self.index

    @property
    def total(self) -> int:
        return self.segments + self.catalog


def _size(paths: Iterable[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def disk_usage(data: Path) -> DiskUsage:
    stores = sorted(p for p in (data / "stores").glob("*") if p.is_dir())
    segments = _size(f for s in stores for f in (s / "segments").glob("*"))
    catalogs = [s / "catalog.sqlite" for s in stores]
    wal = _size(c.parent / "catalog.sqlite-wal" for c in catalogs)
    tables: dict[str, int] = {}
    for cat in catalogs:
        conn = sqlite3.connect(cat)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                tables[name] = tables.get(name, 0) + int(size)
        finally:
            conn.close()
    catalog = _size(c.parent / n for c in catalogs for n in ("catalog.sqlite",
                                                            "catalog.sqlite-wal"))
    index = sum(v for k, v in tables.items() if k.startswith("fts_"))
    everything = _size(data.rglob("*"))
    other = everything - segments - _size(f for c in catalogs
                                          for f in c.parent.glob("catalog.sqlite*"))
    return DiskUsage(segments, wal, catalog, index, tables, other)


# -- search --------------------------------------------------------------------------------
@dataclass
class SearchResult:
    label: str
    query: str
    total: int
    hits: int
    cold_ms: float
    cache_dropped: bool
    runs_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs_ms)

    @property
    def p95(self) -> float:  # nearest rank: the 19th of 20
        ordered = sorted(self.runs_ms)
        return ordered[math.ceil(0.95 * len(ordered)) - 1]


def drop_from_page_cache(paths: Iterable[Path]) -> bool:
    """Evict these files' pages from the OS page cache (posix_fadvise, no privileges)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    ok = True
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            ok = False
            continue
        try:
            os.fdatasync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            ok = False
        finally:
            os.close(fd)
    return ok


def bench_searches(data: Path) -> list[SearchResult]:
    from mailkeep.core.archive import Archive

    files = [p for p in data.rglob("*") if p.is_file() and (
        p.name.startswith("catalog.sqlite") or p.name.startswith("mailkeep.db"))]
    results = []
    for label, query in QUERIES:
        dropped = drop_from_page_cache(files)
        archive = Archive(data)
        try:
            start = time.perf_counter()
            archive.search(query, limit=20)  # also opens the store: lazily, on first use
            cold = (time.perf_counter() - start) * 1000
            archive.search(query, limit=20)  # warm-up
            runs = []
            for _ in range(SEARCH_RUNS):
                start = time.perf_counter()
                res = archive.search(query, limit=20)
                runs.append((time.perf_counter() - start) * 1000)
        finally:
            archive.close()
        results.append(SearchResult(label, query, res.total, len(res.hits), cold, dropped, runs))
    return results


# -- report --------------------------------------------------------------------------------
def table(rows: list[list[str]], right: Iterable[int] = ()) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = set(right)
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right and n else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines


def report(info: list[str], imports: list[ImportResult], disks: list[DiskUsage | None],
           searches: list[list[SearchResult]]) -> None:
    say()
    say("=" * 100)
    say("mailkeep import + search benchmark: linux-mips bulk corpus")
    for line in info:
        say(line)
    say(f"reference (issue): {REFERENCES}")
    say("=" * 100)

    say()
    say("IMPORT  (`mailkeep --data D import INPUT --jsonl`, a child process; wall clock)")
    head = ["", *(f"{r.input.name} ({r.input.files:,} files)" for r in imports), "target"]
    rows = [head]
    rows.append(["input size", *(mb(r.input.bytes) for r in imports), ""])
    rows.append(["message bytes read (importer)", *(
        mb(r.summary.get("bytes", 0)) for r in imports), ""])
    rows.append(["messages archived", *(
        f"{r.archived:,}" + ("" if r.archived == r.input.messages else " (!)") for r in imports),
        f"{EXPECTED_MESSAGES:,}"])
    rows.append(["duplicates / failed / skipped", *(
        f"{r.summary.get('duplicates', '?')} / {r.summary.get('failed', '?')} / "
        f"{r.summary.get('skipped', '?')}" for r in imports), ""])
    rows.append(["exit status", *(str(r.exit_code) for r in imports), "0"])
    rows.append(["wall time", *(f"{r.wall:.1f} s" for r in imports), ""])
    rows.append(["messages/s", *(f"{r.rate:,.0f}  {verdict(r.rate >= TARGET_RATE)}"
                                 for r in imports), f">= {TARGET_RATE:,}"])
    rows.append(["MB/s (input bytes / wall time)", *(f"{r.mb_per_s:.1f}" for r in imports), ""])
    rows.append(["importer's own timing", *(
        f"{r.summary.get('seconds', 0):.1f} s, {r.summary.get('messagesPerSecond', 0):,.0f}/s"
        for r in imports), ""])
    rows.append(["peak RSS, process tree (sum)", *(
        f"{mb(r.peak_rss)}  {verdict(r.peak_rss < TARGET_RSS)}" for r in imports),
        f"< {mb(TARGET_RSS)}"])
    rows.append(["peak PSS, process tree (per 1 s)", *(mb(r.peak_pss) for r in imports), ""])
    rows.append(["main process ru_maxrss (VmHWM)", *(mb(r.main_hwm) for r in imports), ""])
    rows.append(["wait4 ru_maxrss (largest reaped)", *(mb(r.wait4_maxrss) for r in imports), ""])
    rows.append(["processes in the tree (max)", *(str(r.max_processes) for r in imports), ""])
    rows.append(["RSS samples (every 50 ms)", *(str(r.samples) for r in imports), ""])
    rows.append(["CPU time of the import's processes", *(
        f"{r.tree_cpu:.1f} s ({r.tree_cpu / r.wall:.2f} cores)" for r in imports), ""])
    rows.append(["CPU time of everything else", *(
        f"{r.other_cpu:.1f} s ({r.other_cpu / r.wall:.2f} cores)" for r in imports), ""])
    for line in table(rows, right=range(1, len(imports) + 1)):
        say(line)
    for r in imports:
        if r.other_cpu > 0.25 * r.wall:
            say(f"  NOTE: other work kept {r.other_cpu / r.wall:.2f} of the "
                f"{os.cpu_count()} cores busy during the {r.input.name} import: its figures "
                "are pessimistic")

    say()
    say("BYTES ON DISK  (ratio = bytes / input size; catalog after PRAGMA wal_checkpoint)")
    rows = [["", *(r.input.name for r in imports), "target"]]

    def cell(r: ImportResult, d: DiskUsage | None, pick: Callable[[DiskUsage], int],
             target: bool = False) -> str:
        if d is None:
            return "-"
        ratio = pick(d) / r.input.bytes
        text = f"{mb(pick(d))}  {ratio:.3f}x"
        return f"{text}  {verdict(ratio < TARGET_DISK_RATIO)}" if target else text

    pairs = list(zip(imports, disks, strict=True))
    rows.append(["segments (compressed messages)", *(cell(r, d, lambda u: u.segments)
                                                     for r, d in pairs), ""])
    rows.append(["catalog without the index", *(cell(r, d, lambda u: u.catalog_rest)
                                                for r, d in pairs), ""])
    rows.append(["full-text index (fts_* tables)", *(cell(r, d, lambda u: u.index)
                                                     for r, d in pairs), ""])
    rows.append(["total: segments + catalog + index", *(
        cell(r, d, lambda u: u.total, target=True) for r, d in pairs),
        f"< {TARGET_DISK_RATIO:.2f}x"])
    rows.append(["other files (master db, manifest)", *(cell(r, d, lambda u: u.other)
                                                        for r, d in pairs), ""])
    rows.append(["WAL left by the import (checkpointed)", *(
        cell(r, d, lambda u: u.wal_after_import) for r, d in pairs), ""])
    for line in table(rows, right=range(1, len(imports) + 1)):
        say(line)
    for r, d in pairs:
        if d is not None:
            parts = ", ".join(f"{k} {mb(v)}" for k, v in sorted(
                d.tables.items(), key=lambda kv: -kv[1]) if v >= MB // 10)
            say(f"  {r.input.name} catalog pages by table (>= 0.1 MB): {parts}")

    for r, results in zip(imports, searches, strict=True):
        if not results:
            continue
        say()
        say(f"SEARCH on the {r.input.name} import  (Archive.search(q, limit=20): first page + "
            f"total; {SEARCH_RUNS} runs after 1 warm-up; ms)")
        rows = [["kind", "query", "total", "page", "median", "p95", "cold", "target"]]
        for s in results:
            rows.append([s.label, s.query, f"{s.total:,}", str(s.hits), f"{s.median:.2f}",
                         f"{s.p95:.2f}", f"{s.cold_ms:.1f}",
                         f"< {TARGET_SEARCH_MS:.0f}  {verdict(s.median < TARGET_SEARCH_MS)}"])
        for line in table(rows, right=(2, 3, 4, 5, 6)):
            say(line)
        dropped = all(s.cache_dropped for s in results)
        say("  cold: the first search on a fresh Archive (opens the store's catalog), with the "
            "catalog files")
        say("  " + ("evicted from the OS page cache (posix_fadvise DONTNEED) before it"
                    if dropped else "NOT evicted from the OS page cache (posix_fadvise failed)"))

    say()
    say("SUMMARY")
    rows = [["target", *(r.input.name for r in imports)]]
    rows.append([f"import >= {TARGET_RATE:,} messages/s", *(
        f"{verdict(r.rate >= TARGET_RATE)} ({r.rate:,.0f})" for r in imports)])
    rows.append([f"on disk < {TARGET_DISK_RATIO:.1f}x the raw mail", *(
        f"{verdict(d.total / r.input.bytes < TARGET_DISK_RATIO)} ({d.total / r.input.bytes:.3f}x)"
        if d else "-" for r, d in pairs)])
    rows.append([f"search median < {TARGET_SEARCH_MS:.0f} ms, every query", *(
        f"{verdict(all(s.median < TARGET_SEARCH_MS for s in res))} "
        f"(slowest {max(s.median for s in res):.1f} ms)" if res else "-"
        for res in searches)])
    rows.append([f"import peak RSS < {mb(TARGET_RSS)}", *(
        f"{verdict(r.peak_rss < TARGET_RSS)} ({mb(r.peak_rss)})" for r in imports)])
    rows.append(["all 49,445 messages archived", *(
        "yes" if r.archived == EXPECTED_MESSAGES else f"NO ({r.archived:,})" for r in imports)])
    for line in table(rows):
        say(line)


# -- main ----------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK,
                    help="work directory for the inputs and data directories (bench/.work)")
    ap.add_argument("--only", choices=("mbox", "maildir"), help="benchmark one input only")
    ap.add_argument("--keep", action="store_true", help="keep the imported data directories")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    info = machine_info()
    for line in info:
        say(line)
    mbox = prepare_mbox(work, args.corpus)
    inputs = []
    if args.only in (None, "mbox"):
        inputs.append(mbox)
    if args.only in (None, "maildir"):
        inputs.append(prepare_maildir(work, mbox))

    imports: list[ImportResult] = []
    disks: list[DiskUsage | None] = []
    searches: list[list[SearchResult]] = []
    for inp in inputs:
        res = run_import(inp, work)
        imports.append(res)
        has_store = any((res.data_dir / "stores").glob("*/catalog.sqlite"))
        disks.append(disk_usage(res.data_dir) if has_store else None)
        if has_store:
            say(f"  searching the {inp.name} import ...")
            searches.append(bench_searches(res.data_dir))
        else:
            say("  no store was created: no disk figures, no searches")
            searches.append([])
        if not args.keep:
            shutil.rmtree(res.data_dir, ignore_errors=True)
    report(info, imports, disks, searches)
    if args.keep:
        say()
        say("data directories kept: " + ", ".join(str(r.data_dir) for r in imports))


if __name__ == "__main__":
    main()
