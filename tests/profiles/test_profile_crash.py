"""A kill -9 of a profile run in the middle: the rerun archives the rest, every file ends up in
the archive exactly once, the store verifies, and the interrupted run is reported.

The run is a real `mailkeep profile run` process that stops itself right after the store
writer's second durable group commit (tests/crashpoints.py) and is killed there: somewhere,
not everywhere, whatever the speed of the machine."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from mailkeep.core.archive import Archive
from mailkeep.core.storage.verify import verify
from tests.crashpoints import stopped_at
from tests.helpers import mk, mk_ok

FILES = 3000
# After the 2nd call of Store.commit (segment fsync, then the catalog commit) has returned.
SECOND_COMMIT = "mailkeep.core.storage.store:Store.commit:2:after"


def test_kill_during_run_loses_and_doubles_nothing(tmp_path: Path) -> None:
    data, drop = tmp_path / "data", tmp_path / "drop"
    (drop / "sub").mkdir(parents=True)
    past = time.time() - 60
    digests = set()
    for i in range(FILES):
        raw = (f"From: a{i}@example.org\r\nTo: b@example.org\r\nSubject: crash {i}\r\n"
               f"Message-ID: <c{i}@example.org>\r\n\r\n" + f"body {i}\r\n" * 20).encode()
        path = drop / ("sub" if i % 3 == 0 else "") / f"{i:05d}.eml"
        path.write_bytes(raw)
        os.utime(path, (past, past))
        digests.add(hashlib.sha256(raw).hexdigest())
    mk_ok(data, "call", "CreateUser", "userName=alice", "privileges=login")
    props = tmp_path / "p.json"
    props.write_text(json.dumps({"name": "drop", "type": "directory", "userName": "alice",
                                 "path": str(drop)}))
    mk_ok(data, "profile", "create", str(props))

    with stopped_at(["--data", str(data), "profile", "run", "1"], SECOND_COMMIT):
        pass  # and killed right there

    rerun = mk(data, "profile", "run", "1")
    assert rerun.exit_code == 0, rerun.stderr
    second = json.loads(rerun.stdout)
    assert second["result"] == "succeeded"
    assert 0 < second["itemsArchived"] < FILES  # the first run got somewhere, not everywhere

    with Archive(data) as archive:
        rec, store = archive.current_store()
        assert verify(store).ok
        numbers = [n for (n,) in store.catalog.conn.execute("SELECT number FROM entries")]
        got = [hashlib.sha256(store.read(n)).hexdigest() for n in numbers]
    assert len(got) == FILES and set(got) == digests  # each once

    results = json.loads(mk(data, "profile", "results", "--json").stdout)
    assert [r["result"] for r in results] == ["failed", "succeeded"]
    assert "interrupted" in results[0]["error"]
    # What the killed run committed but had not yet saved in the profile's state is read
    # again and counted as a duplicate, never stored twice.
    assert second["itemsArchived"] + second["itemsDuplicate"] <= FILES
