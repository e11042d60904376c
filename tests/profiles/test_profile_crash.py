"""A kill -9 of a profile run at a random moment: the rerun archives the rest, every file ends
up in the archive exactly once, the store verifies, and the interrupted run is reported."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from mailkeep.core.archive import Archive
from mailkeep.core.storage.verify import verify
from tests.web.test_real_server import ENV, MAILKEEP

FILES = 3000


def mk(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MAILKEEP, "--data", str(data), *args], env=ENV, text=True,
                          capture_output=True, timeout=300)


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
    assert mk(data, "call", "CreateUser", "userName=alice", "privileges=login").returncode == 0
    props = tmp_path / "p.json"
    props.write_text(json.dumps({"name": "drop", "type": "directory", "userName": "alice",
                                 "path": str(drop)}))
    assert mk(data, "profile", "create", str(props)).returncode == 0

    proc = subprocess.Popen([*MAILKEEP, "--data", str(data), "profile", "run", "1"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)  # well into the run: it takes several seconds for 3,000 files
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)

    rerun = mk(data, "profile", "run", "1")
    assert rerun.returncode == 0, rerun.stderr
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
