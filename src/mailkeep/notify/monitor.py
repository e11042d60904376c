"""The server's own checks that turn into notifications: the outcome of every process, and a
periodic look at the stores and the disk. Each trouble is recorded when it begins, not again
on every check while it lasts."""

from __future__ import annotations

import shutil
from pathlib import Path

from mailkeep.core.archive import Archive
from mailkeep.core.errors import KeyMissing, MailkeepError
from mailkeep.core.storage.store import read_manifest
from mailkeep.functions import REGISTRY
from mailkeep.jobs.process import FinishedRecord
from mailkeep.notify.events import record_event

LOW_DISK = 0.10  # share of the data directory's disk that must stay free


def on_finished(db: Path, rec: FinishedRecord) -> None:
    """A failed or cancelled long-running process (or any failed change) is news."""
    fn = REGISTRY.get(rec.name)
    if rec.outcome == "succeeded" or fn is None:
        return
    if not (fn.long_running or fn.changes):
        return
    if rec.outcome == "failed" and rec.name in ("RunProfile", "RunTemporaryProfile"):
        return  # the run recorded its own, clearer event (profile.failed)
    if rec.outcome == "failed" and rec.name in ("VerifyStore", "VerifyStores") and (
            rec.error or "").startswith("Verification of"):
        record_event(db, "verify.damage", f"{rec.name} started by {rec.user}: {rec.error}")
    elif rec.outcome == "failed":
        record_event(db, "process.failed", f"{rec.name} started by {rec.user} failed: "
                     f"{rec.error}")
    else:
        record_event(db, "process.cancelled", f"{rec.name} started by {rec.user} was "
                     "cancelled")


class Health:
    """What was wrong at the last check, so that only new trouble is recorded."""

    def __init__(self, data_dir: Path, low_disk: float = LOW_DISK) -> None:
        self.data_dir = data_dir
        self.low_disk = low_disk
        self.bad_stores: set[int] = set()
        self.disk_low = False

    def check(self) -> list[str]:
        """Look at the stores and the disk now; returns the kinds recorded."""
        db = self.data_dir / "mailkeep.db"
        recorded: list[str] = []
        bad: set[int] = set()
        with Archive(self.data_dir) as archive:
            for rec in archive.stores():
                if rec.state == "disabled":
                    continue
                try:
                    # Light and read-only: the manifest and, for an encrypted store, the
                    # key. Opening the store itself could repair its catalog and so get
                    # in the way of whoever is writing it.
                    manifest = read_manifest(rec.path)
                    if manifest.get("encryption") and archive.master_key() is None:
                        raise KeyMissing("its master key is not available (conf/master.key "
                                         "or MAILKEEP_MASTER_KEY)")
                except MailkeepError as exc:
                    bad.add(rec.id)
                    if rec.id not in self.bad_stores:
                        record_event(db, "store.unavailable", f"store {rec.name} (id {rec.id}) "
                                     f"cannot be opened: {exc.message}")
                        recorded.append("store.unavailable")
        self.bad_stores = bad
        usage = shutil.disk_usage(self.data_dir)
        low = bool(usage.total) and usage.free < self.low_disk * usage.total
        if low and not self.disk_low:
            record_event(db, "disk.low", f"only {usage.free // 2**20} MB of "
                         f"{usage.total // 2**20} MB free on the disk of {self.data_dir}")
            recorded.append("disk.low")
        self.disk_low = low
        return recorded
