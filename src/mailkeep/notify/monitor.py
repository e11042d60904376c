"""The server's periodic look at the stores and the disk, turned into notifications. Each
trouble is recorded when it begins, not again on every check while it lasts. (What a failed
process raises is decided by the error table and recorded by the invoke path.)"""

from __future__ import annotations

import shutil
from pathlib import Path

from mailkeep.core.archive import Archive
from mailkeep.core.errors import MailkeepError
from mailkeep.core.keys import KeyRing
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.storage.store import read_manifest
from mailkeep.notify.events import record_event

LOW_DISK = 0.10  # share of the data directory's disk that must stay free


def disk_low(path: Path, share: float = LOW_DISK) -> tuple[bool, int, int]:
    """(whether less than `share` of the disk is free, free bytes, total bytes)."""
    usage = shutil.disk_usage(path)
    return bool(usage.total) and usage.free < share * usage.total, usage.free, usage.total


class Health:
    """What was wrong at the last check, so that only new trouble is recorded."""

    def __init__(self, data_dir: Path, master: MasterDB, keys: KeyRing | None = None,
                 low_disk: float = LOW_DISK) -> None:
        self.data_dir = data_dir
        self.master = master
        self.keys = keys
        self.low_disk = low_disk
        self.bad_stores: set[int] = set()
        self.disk_low = False

    def check(self) -> list[str]:
        """Look at the stores and the disk now; returns the kinds recorded."""
        recorded: list[str] = []
        bad: set[int] = set()
        with Archive(self.data_dir, self.master, self.keys) as archive:
            for rec in archive.stores():
                if rec.state == "disabled":
                    continue
                try:
                    # Light and read-only: the manifest and, for an encrypted store, its
                    # key. Opening the store itself could repair its catalog and so get
                    # in the way of whoever is writing it.
                    manifest = read_manifest(rec.path)
                    if archive.keys.locked(manifest) and rec.state != "current":
                        continue  # locked by design until UnlockStore; no mail waits for it
                    archive.keys.store_key(manifest)
                except MailkeepError as exc:
                    bad.add(rec.id)
                    if rec.id not in self.bad_stores:
                        record_event(self.master, "store.unavailable", f"store {rec.name} (id "
                                     f"{rec.id}) cannot be opened: {exc.message}")
                        recorded.append("store.unavailable")
        self.bad_stores = bad
        low, free, total = disk_low(self.data_dir, self.low_disk)
        if low and not self.disk_low:
            record_event(self.master, "disk.low", f"only {free // 2**20} MB of "
                         f"{total // 2**20} MB free on the disk of {self.data_dir}")
            recorded.append("disk.low")
        self.disk_low = low
        return recorded
