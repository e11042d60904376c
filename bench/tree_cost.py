"""What the stores' Merkle trees (core/storage/tree.py) and the signed heads add to an import:
the same mbox imported into fresh data directories with the tree as it is and with its leaves
made but not hashed or written (the work the tree adds, switched off in this process only),
alternately, in one run on the same disk; and what it adds to the disk (tree.leaves,
tree.heads, and the `tl` entries in the records' headers). The audit chain adds one record per
import run, so nothing measurable here (bench/audit_chain.py measures it)."""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import machine  # noqa: E402

from mailkeep.core.archive import Archive  # noqa: E402
from mailkeep.core.ingest import Importer  # noqa: E402
from mailkeep.core.storage import tree as mtree  # noqa: E402
from mailkeep.sources.detect import read_paths  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "bulk" / "linux-mips"


def import_once(mbox: Path, data: Path) -> tuple[float, int, dict[str, int]]:
    t0 = time.perf_counter()
    with Archive(data) as archive:
        stats = Importer(archive).run(read_paths([mbox]))
    seconds = time.perf_counter() - t0
    store = data / "stores" / "Default"
    sizes = {"segments": sum(p.stat().st_size for p in (store / "segments").glob("*.seg")),
             "tree.leaves": (store / "tree.leaves").stat().st_size
             if (store / "tree.leaves").exists() else 0,
             "tree.heads": (store / "tree.heads").stat().st_size
             if (store / "tree.heads").exists() else 0}
    return seconds, stats.archived, sizes


class NoTree:
    """The tree's work left out: leaves made (the header entry) but neither hashed nor kept."""

    def __enter__(self) -> None:
        self.saved = (mtree.Tree.add, mtree.Tree.flush, mtree.Tree.sync, mtree.Tree.root)

        def add(tree: mtree.Tree, type_: bytes, what: bytes) -> dict[str, Any]:
            return {"i": 0}

        mtree.Tree.add = add  # type: ignore[method-assign]
        mtree.Tree.flush = lambda tree: None  # type: ignore[method-assign]
        mtree.Tree.sync = lambda tree: None  # type: ignore[method-assign]
        mtree.Tree.root = lambda tree: (0, b"")  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        (mtree.Tree.add, mtree.Tree.flush, mtree.Tree.sync, mtree.Tree.root) = self.saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", default="2001,2002", help="linux-mips years to import")
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    print(machine(None))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mbox = work / "input.mbox"
        with open(mbox, "wb") as out:
            for year in opts.years.split(","):
                with gzip.open(CORPUS / f"linux-mips-{year.strip()}.mbox.gz") as fh:
                    shutil.copyfileobj(fh, out)
        times: dict[str, list[float]] = {"with": [], "without": []}
        sizes: dict[str, dict[str, int]] = {}
        count = 0
        for r in range(opts.rounds):
            for mode in ("without", "with") if r % 2 == 0 else ("with", "without"):
                data = work / f"data-{mode}-{r}"
                if mode == "without":
                    with NoTree():
                        seconds, count, sizes[mode] = import_once(mbox, data)
                else:
                    seconds, count, sizes[mode] = import_once(mbox, data)
                times[mode].append(seconds)
                shutil.rmtree(data)
        with_s, without_s = statistics.median(times["with"]), statistics.median(times["without"])
        print(f"import of {count:,} messages ({mbox.stat().st_size / 1e6:.0f} MB mbox), median "
              f"of {opts.rounds}: {without_s:.2f} s without the tree, {with_s:.2f} s with it "
              f"({(with_s / without_s - 1):+.1%})")
        print("  each round (without, with): " + ", ".join(
            f"{a:.2f}/{b:.2f}" for a, b in zip(times["without"], times["with"], strict=True)))
        w, wo = sizes["with"], sizes["without"]
        extra = w["segments"] - wo["segments"] + w["tree.leaves"] + w["tree.heads"]
        print(f"disk: segments {wo['segments'] / 1e6:.1f} MB without, "
              f"{w['segments'] / 1e6:.1f} MB with (the leaves in the headers); tree.leaves "
              f"{w['tree.leaves'] / 1e3:.0f} KB, tree.heads {w['tree.heads']} B: "
              f"{extra / 1e3:.0f} KB in all, {extra / wo['segments']:.2%} of the segments")


if __name__ == "__main__":
    main()
