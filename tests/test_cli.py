"""The `mailkeep` command line as a user meets it: help, data directory, exit codes, output."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import selectors
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import MAILKEEP, clean_env, cli, mk, mk_ok

ATTACHMENT_BYTES = bytes(range(256)) * 3  # 768 bytes once decoded
SHOW_ME = (
    b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>\r\n"
    b"To: Ann <ann@example.org>\r\n"
    b"Cc: bo@example.org\r\n"
    b"Subject: =?utf-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\n"
    b"Date: Tue, 02 Apr 2024 10:20:30 +0200\r\n"
    b"Message-ID: <show.me@example.de>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Sch=F6ne Gr=FC=DFe,\r\n"
    b"der Bericht h=E4ngt an.\r\n"
    b"--b1\r\n"
    b"Content-Type: application/pdf; name=\"bericht.pdf\"\r\n"
    b"Content-Disposition: attachment; filename=\"bericht.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.encodebytes(ATTACHMENT_BYTES).replace(b"\n", b"\r\n")
    + b"--b1--\r\n"
    b"epilogue \xff\xfe not utf-8\r\n"
)


def plain(subject: str, day: int = 1, body: str = "hello") -> bytes:
    return (f"From: x@example.com\nTo: y@example.com\nSubject: {subject}\n"
            f"Date: Mon, {day:02d} Jan 2024 00:00:00 +0000\n\n{body}\n").encode()


@pytest.fixture
def mail(tmp_path: Path) -> Path:
    """A small tree: Inbox (2 messages), Work/Projects (1 with an attachment)."""
    root = tmp_path / "mail"
    (root / "Inbox").mkdir(parents=True)
    (root / "Work" / "Projects").mkdir(parents=True)
    (root / "Inbox" / "a.eml").write_bytes(plain("first", 1))
    (root / "Inbox" / "b.eml").write_bytes(plain("second", 2))
    (root / "Work" / "Projects" / "show.eml").write_bytes(SHOW_ME)
    return root


# -- help and version ---------------------------------------------------------------------
COMMANDS = ["serve", "store", "import", "export", "search", "folders", "show", "verify",
            "recover"]
STORE_COMMANDS = ["create", "list", "attach", "detach", "rename", "state"]


def test_help() -> None:
    res = cli("--help")
    assert res.exit_code == 0
    assert "mailkeep" in res.stdout and "--data" in res.stdout
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", res.stdout, re.M), name
    assert cli("-h").stdout == res.stdout
    res = cli("--version")
    assert res.exit_code == 0 and "mailkeep" in res.stdout and re.search(r"\d+\.\d+", res.stdout)


@pytest.mark.parametrize("args", [[c] for c in COMMANDS] + [["store", c] for c in STORE_COMMANDS])
def test_subcommand_help(args: list[str], tmp_path: Path) -> None:
    res = cli("--data", str(tmp_path / "never"), *args, "--help")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("Usage:") and " ".join(args) in res.stdout.splitlines()[0]
    assert not (tmp_path / "never").exists()  # help touches nothing


# -- the data directory -------------------------------------------------------------------
def test_data_directory_option_and_environment(tmp_path: Path, mail: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               request: pytest.FixtureRequest) -> None:
    monkeypatch.chdir(tmp_path)
    by_option, by_env, other = tmp_path / "opt", tmp_path / "env", tmp_path / "other"
    masters: dict[Path, str] = {}

    def own(data: Path) -> dict[str, str | None]:
        """What gives a data directory a master database of its own: in SQLite its file, in
        PostgreSQL a database of its own (one shared would register the stores of all)."""
        if not os.environ.get("MAILKEEP_DATABASE"):
            return {}
        if data not in masters:
            server = request.getfixturevalue("postgres_server")
            masters[data] = url = server.new_database()
            request.addfinalizer(lambda: server.drop_database(url))
        return {"MAILKEEP_DATABASE": masters[data]}

    mk_ok(by_option, "import", str(mail / "Inbox" / "a.eml"), env=own(by_option))
    if not os.environ.get("MAILKEEP_DATABASE"):  # the master database is not in PostgreSQL
        assert (by_option / "mailkeep.db").is_file()
    assert (by_option / "stores" / "Default" / "store.json").is_file()

    res = cli("import", str(mail / "Inbox" / "b.eml"),
              env={"MAILKEEP_DATA": str(by_env), **own(by_env)})
    assert res.exit_code == 0, res.output
    assert (by_env / "stores" / "Default" / "store.json").is_file()
    res = cli("search", "second", "--json", env={"MAILKEEP_DATA": str(by_env), **own(by_env)})
    assert json.loads(res.stdout)["total"] == 1
    # --data wins over $MAILKEEP_DATA
    res = cli("--data", str(by_option), "search", "second", "--json",
                 env={"MAILKEEP_DATA": str(by_env), **own(by_option)})
    assert json.loads(res.stdout)["total"] == 0
    res = cli("--data", str(other), "search", "first", "--json",
                 env={"MAILKEEP_DATA": str(by_option), **own(other)})
    assert json.loads(res.stdout)["total"] == 0

    # Neither: ./mailkeep-data
    assert not (tmp_path / "mailkeep-data").exists()
    res = cli("import", str(mail / "Inbox" / "a.eml"), env=own(tmp_path / "mailkeep-data"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mailkeep-data" / "stores" / "Default" / "store.json").is_file()


# -- exit codes ---------------------------------------------------------------------------
def test_exit_codes(tmp_path: Path, mail: Path) -> None:
    data = tmp_path / "data"
    assert mk_ok(data, "import", str(mail)).exit_code == 0

    # 1: an import where a message could not be read (the others are still archived)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "good.eml").write_bytes(plain("good one", 5))
    (broken / "dangling.eml").symlink_to(tmp_path / "nowhere")
    res = mk(data, "import", str(broken))
    assert res.exit_code == 1, res.output
    assert "1 archived" in res.stdout and "1 failed" in res.stdout
    assert "dangling.eml" in res.stderr
    res = mk(data, "import", str(tmp_path / "does-not-exist"))
    assert res.exit_code == 1 and "1 failed" in res.stdout and "does-not-exist" in res.stderr

    # 2: bad usage or a bad argument
    for args in (["search"], ["show"], ["nosuchcommand"], ["search", "x", "--nosuchoption"],
                 ["search", "x", "--limit", "-1"], ["search", "x", "--limit", "lots"],
                 ["show", "not-an-id"], ["show", "1"], ["search", "after:2024-02-30"],
                 ["store", "state", "1", "sideways"], ["import"], ["export"]):
        res = mk(data, *args)
        assert res.exit_code == 2, (args, res.output)
        assert "Traceback" not in res.output

    # 3: not found
    for args in (["show", "1:999999"], ["show", "99:1"], ["store", "detach", "nosuch"],
                 ["store", "rename", "nosuch", "x"], ["verify", "nosuch"],
                 ["store", "attach", str(tmp_path / "nothing-here")]):
        res = mk(data, *args)
        assert res.exit_code == 3, (args, res.output)
        assert res.stderr.startswith("error:"), (args, res.stderr)
    assert "1:999999" in mk(data, "show", "1:999999").stderr
    assert "nosuch" in mk(data, "store", "detach", "nosuch").stderr


# -- show ---------------------------------------------------------------------------------
def message_id(data: Path, query: str) -> str:
    res = json.loads(mk_ok(data, "search", "--json", "--", query).stdout)
    assert res["total"] == 1, res
    mid: str = res["messages"][0]["id"]
    return mid


def test_show_decodes_and_raw_is_exact(tmp_path: Path, mail: Path) -> None:
    data = tmp_path / "data"
    mk_ok(data, "import", str(mail))
    mid = message_id(data, "Köln")
    out = mk_ok(data, "show", mid).stdout
    lines = out.splitlines()
    assert lines[0].startswith(mid) and "admin/Work/Projects" in lines[0]
    assert "Subject: Grüße aus Köln" in out
    assert "From: Jürgen Müller <jm@example.de>" in out
    assert "To: Ann <ann@example.org>" in out
    assert "Cc: bo@example.org" in out
    assert "Message-ID: <show.me@example.de>" in out
    assert re.search(r"^Date: .*2024", out, re.M)
    assert "Schöne Grüße,\nder Bericht hängt an." in out
    assert "=F6" not in out and "preamble" not in out
    assert "Attachments:" in out
    attachment = [line for line in lines if "bericht.pdf" in line
                  and not line.startswith("Indexed with a warning")]
    assert len(attachment) == 1
    # its bytes are no PDF: said, and the message is shown all the same
    assert "attachment bericht.pdf: it is not a readable PDF" in out
    assert "application/pdf" in attachment[0] and "768 B" in attachment[0]

    raw = mk_ok(data, "show", "--raw", mid).stdout_bytes
    assert raw == SHOW_ME
    for name in ("a.eml", "b.eml"):
        original = (mail / "Inbox" / name).read_bytes()
        subject = original.split(b"Subject: ")[1].split(b"\n")[0].decode()
        assert mk_ok(data, "show", "--raw", message_id(data, f"subject:{subject}")
                  ).stdout_bytes == original


# -- folders --------------------------------------------------------------------------------
def test_folders_tree_and_json(tmp_path: Path, mail: Path) -> None:
    data = tmp_path / "data"
    mk_ok(data, "import", str(mail))
    alice = tmp_path / "alice.eml"
    alice.write_bytes(plain("alice's", 3))
    mk_ok(data, "import", "--user", "alice", "--folder", "Archive/2023", str(alice))

    rows: list[dict[str, Any]] = json.loads(mk_ok(data, "folders", "--json").stdout)
    inbox_bytes = sum(len(p.read_bytes()) for p in (mail / "Inbox").iterdir())
    assert rows == [
        {"user": "admin", "folder": "Inbox", "messages": 2, "bytes": inbox_bytes},
        {"user": "admin", "folder": "Work/Projects", "messages": 1, "bytes": len(SHOW_ME)},
        {"user": "alice", "folder": "Archive/2023", "messages": 1,
         "bytes": len(alice.read_bytes())},
    ]
    only = json.loads(mk_ok(data, "folders", "--json", "--user", "alice").stdout)
    assert [r["folder"] for r in only] == ["Archive/2023"]

    tree = mk_ok(data, "folders").stdout
    lines = [line.rstrip() for line in tree.splitlines() if line.strip()]
    assert lines[0].strip() == "admin"
    assert any(re.search(r"Inbox\s+2 messages", line) for line in lines)
    work = next(i for i, line in enumerate(lines) if line.endswith("Work"))
    assert re.search(r"Projects\s+1 message,", lines[work + 1])
    indent = len(lines[work]) - len(lines[work].lstrip("│ ├└─"))
    assert len(lines[work + 1]) - len(lines[work + 1].lstrip("│ ├└─")) > indent
    assert any(line.strip() == "alice" for line in lines)
    assert any(re.search(r"2023\s+1 message,", line) for line in lines)


# -- import output ------------------------------------------------------------------------
SUMMARY = re.compile(
    r"^(\d+) archived, (\d+) duplicates, (\d+) failed, (\d+) skipped, (\d+) with warnings; "
    r"[\d.]+ (B|KB|MB|GB) in [\d.]+ s \(([\d.]+) messages/s, [\d.]+ (B|KB|MB|GB)/s\)$", re.M)


def test_import_summary_line(tmp_path: Path, mail: Path) -> None:
    data = tmp_path / "data"
    (mail / "empty.eml").write_bytes(b"")
    res = mk_ok(data, "import", str(mail))
    m = SUMMARY.search(res.stdout)
    assert m, res.stdout
    assert m.group(1, 2, 3, 4) == ("3", "0", "0", "1")
    total = sum(len(p.read_bytes()) for p in mail.rglob("*.eml"))
    assert m.group(6) == "B" or total >= 1024
    assert "skipped" in res.stderr and "empty.eml" in res.stderr

    res = mk_ok(data, "import", str(mail))
    m = SUMMARY.search(res.stdout)
    assert m and m.group(1, 2, 3, 4) == ("0", "3", "0", "1")


def test_import_jsonl(tmp_path: Path, mail: Path) -> None:
    data = tmp_path / "data"
    (mail / "empty.eml").write_bytes(b"")
    (mail / "dangling.eml").symlink_to(tmp_path / "nowhere")
    (mail / "Inbox" / "again.eml").write_bytes((mail / "Inbox" / "a.eml").read_bytes())
    res = mk(data, "import", "--jsonl", str(mail))
    assert res.exit_code == 1  # one failure
    records = [json.loads(line) for line in res.stdout.splitlines()]
    *lines, last = records
    assert set(last) == {"summary"}
    summary = last["summary"]
    assert {"archived", "duplicates", "failed", "skipped", "warnings", "bytes", "seconds",
            "messagesPerSecond", "bytesPerSecond"} <= set(summary)
    assert (summary["archived"], summary["duplicates"], summary["failed"],
            summary["skipped"]) == (3, 1, 1, 1)
    by_origin = {Path(r["origin"]).name: r for r in lines}
    assert len(by_origin) == len(lines) == 6
    for name in ("a.eml", "b.eml", "show.eml"):
        rec = by_origin[name]
        assert rec["status"] == "archived" and re.fullmatch(r"\d+:\d+", rec["id"]), rec
        assert set(rec) <= {"status", "origin", "id", "warnings"}
    assert len({by_origin[n]["id"] for n in ("a.eml", "b.eml", "show.eml")}) == 3
    assert by_origin["again.eml"]["status"] == "duplicate"
    assert by_origin["empty.eml"]["status"] == "skipped" and by_origin["empty.eml"]["reason"]
    assert by_origin["dangling.eml"]["status"] == "failed" and by_origin["dangling.eml"]["reason"]
    assert summary["bytes"] == sum(len(p.read_bytes()) for p in mail.rglob("*.eml")
                                   if p.name != "dangling.eml")
    # Each archived id is real.
    raw = mk_ok(data, "show", "--raw", by_origin["show.eml"]["id"]).stdout_bytes
    assert raw == SHOW_ME


# -- verify ---------------------------------------------------------------------------------
def test_verify_ok(tmp_path: Path, mail: Path) -> None:
    data = tmp_path / "data"
    mk_ok(data, "import", str(mail))
    res = mk_ok(data, "verify")
    assert re.search(r"store 'Default' \(id 1\): 3 messages, \d+ records: ok", res.stdout)
    report = json.loads(mk_ok(data, "verify", "--json").stdout)
    assert report[0]["ok"] is True and report[0]["messages"] == 3
    assert report[0]["problems"] == []
    assert mk_ok(data, "verify", "Default").exit_code == 0


# -- serve ----------------------------------------------------------------------------------
def test_serve_starts_and_stops_cleanly_on_sigterm(tmp_path: Path, mail: Path) -> None:
    data = tmp_path / "data"
    mk_ok(data, "import", str(mail))
    proc = subprocess.Popen([*MAILKEEP, "--data", str(data), "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=30), "no output from `mailkeep serve` within 30 s"
        first = proc.stdout.readline().decode()
        assert "mailkeep" in first and str(data.resolve()) in first, first
        assert proc.poll() is None  # still serving
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (proc.returncode, first + out.decode(), err.decode())
    assert "stopped" in out.decode()
    assert "Traceback" not in err.decode()
    # It let go of the store: the CLI can write again.
    mk_ok(data, "import", str(tmp_path / "mail" / "Inbox" / "a.eml"))


def test_user_password_changes_the_initial_admin(tmp_path: Path) -> None:
    from mailkeep.core.admin.users import Users
    from mailkeep.core.masterdb import MasterDB

    data = tmp_path / "data"
    res = mk(data, "user", "password", "admin", input="n3w-Secret\nn3w-Secret\n")
    assert res.exit_code == 0, res.output
    assert "n3w-Secret" not in res.output
    with MasterDB.of(data) as master:
        users = Users(master)
        assert users.verify_password("admin", "n3w-Secret")
        assert not users.has_initial_password("admin")
    res = mk(data, "user", "list")
    assert "admin" in res.output


def test_import_never_takes_the_data_directory(tmp_path: Path) -> None:
    """`mailkeep import .` where the data directory is under `.` (the default ./mailkeep-data),
    or a path inside the data directory, is refused before anything is read: the master
    database (password hashes) and the keys must never become messages of the archive."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "note.eml").write_bytes(b"Subject: note\r\n\r\nbody\r\n")
    data = work / "mailkeep-data"
    assert mk(data, "import", str(work / "note.eml")).exit_code == 0
    for source in (work, data, data / "conf", data / "mailkeep.db"):
        res = mk(data, "import", str(source))
        assert res.exit_code == 2, (source, res.output)
        assert "data directory" in res.output
    found = json.loads(mk(data, "search", "--json", "").stdout)
    assert [m["subject"] for m in found["messages"]] == ["note"]


def test_help_lists_every_command_as_it_describes_itself_without_importing_them() -> None:
    """`mailkeep --help` answers from the table of commands, importing none of them (nor the
    archive, the functions, the server): the table says what each command says of itself."""
    import subprocess
    import sys

    import click

    from mailkeep.cli import COMMANDS, main
    ctx = click.Context(main)
    for name, (_module, _attr, line) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=1000) == line, name
    probe = ("import sys\nfrom mailkeep.cli import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('mailkeep')), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert "import" in done.stdout and "verify-proof" in done.stdout
    loaded = eval(done.stderr.strip().splitlines()[-1])  # a list of module names
    assert set(loaded) <= {"mailkeep", "mailkeep.cli", "mailkeep.cli.group", "mailkeep.core",
                           "mailkeep.core.files"}


def test_help_is_click_s_text_and_on_a_wide_terminal_needs_no_click() -> None:
    """`mailkeep --help` writes what click writes, at every terminal width; at 80 columns or
    more (and into a pipe) it is written without importing click, from cli/help_text.py."""
    import subprocess
    import sys

    from mailkeep.cli.group import help_for_80_columns
    from mailkeep.cli.help_text import HELP
    assert HELP == help_for_80_columns(), "cli/help_text.py is out of date: run make docs"
    by_click = ("import sys\nsys.argv[0] = 'mailkeep'\nfrom mailkeep.cli.group import main\n"
                "main()")
    for columns in ("200", "80", "79", "40", "x", ""):
        env = clean_env(COLUMNS=columns)
        got = subprocess.run([*MAILKEEP, "--help"], capture_output=True, text=True, timeout=60,
                             env=env)
        want = subprocess.run([sys.executable, "-c", by_click, "--help"], capture_output=True,
                              text=True, timeout=60, env=env)
        assert (got.returncode, got.stdout, got.stderr) == (0, want.stdout, ""), columns
        assert want.returncode == 0 and "verify-proof" in want.stdout
    assert "  -h, --help" in HELP
    probe = ("import sys\nsys.argv[0] = 'mailkeep'\nfrom mailkeep.cli.entry import run\n"
             "try:\n    run()\nexcept SystemExit as exc:\n"
             "    print('exit', exc.code, sorted(sys.modules), file=sys.stderr)")
    for columns, quick in (("100", True), ("", True), ("79", False), ("50", False)):
        done = subprocess.run([sys.executable, "-c", probe, "-h"], capture_output=True,
                              text=True, timeout=60, env=clean_env(COLUMNS=columns))
        assert done.stdout.startswith("Usage: mailkeep [OPTIONS]"), columns
        assert (done.stdout == HELP) is (columns != "50"), columns
        loaded = eval(done.stderr.strip().split(" ", 2)[2])  # a list of module names
        assert ("click" not in loaded) is quick, columns


# -- search as a whole process ------------------------------------------------------------------
SERVER_STACK = ("mailkeep.functions", "mailkeep.web", "mailkeep.jobs", "mailkeep.notify",
                "mailkeep.profiles", "mailkeep.receive", "mailkeep.sources",
                "mailkeep.core.archive", "mailkeep.core.storage.store",
                "mailkeep.core.masterdb.database", "mailkeep.core.storage.segments", "rich",
                "httpx", "starlette", "uvicorn", "cryptography", "zstandard", "click",
                "typing", "dataclasses", "pathlib",  # (these three: a third of its time)
                "contextlib")
SEARCH_PROBE = ("import sys\nfrom mailkeep.cli.entry import run\n"
                "try:\n    run()\nexcept SystemExit as exc:\n"
                "    print('exit', exc.code, file=sys.stderr)\n"
                "print(sorted(sys.modules), file=sys.stderr)")  # as the `mailkeep` script runs


def search_process(data: Path, *words: str) -> tuple[dict[str, Any], list[str]]:
    """`mailkeep search WORDS --json` in a process of its own: (its answer, the modules it
    imported)."""
    import sys
    done = subprocess.run([sys.executable, "-c", SEARCH_PROBE, "--data", str(data), "search",
                           "--json", *words], capture_output=True, text=True, timeout=60,
                          env=clean_env())
    lines = done.stderr.strip().splitlines()
    assert lines[-2] == "exit 0", done.stderr
    loaded: list[str] = eval(lines[-1])  # a list of module names
    return json.loads(done.stdout), loaded


def heavy(loaded: list[str]) -> list[str]:
    return [m for m in loaded if m.startswith(SERVER_STACK)]


def test_search_reads_the_catalogs_without_the_server_stack(tmp_path: Path, mail: Path) -> None:
    """`mailkeep search` answers from the catalogs alone: it imports nothing of the server, the
    function catalog, click, rich, the store's segments or crypto (so that it answers in tens
    of milliseconds, bench/README.md), and finds what the archive finds."""
    data = tmp_path / "data"
    mk_ok(data, "import", str(mail))
    found, loaded = search_process(data, "second OR Köln")
    assert heavy(loaded) == []
    assert "mailkeep.core.finder" in loaded
    assert found == json.loads(mk_ok(data, "search", "--json", "second", "OR", "Köln").stdout)
    assert {m["subject"] for m in found["messages"]} == {"second", "Grüße aus Köln"}
    # the table, as a terminal shows it, without rich
    res = mk_ok(data, "search", "second")
    header, row, total = res.stdout.splitlines()
    assert header.split() == ["id", "date", "from", "subject", "folder"]
    assert re.match(r"1:\d+\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+.+\s+second\s+admin/Inbox$", row)
    assert re.match(r"1 message matches \(\d+ ms\)$", total)


def test_search_of_a_catalog_left_behind_by_a_crash_opens_the_archive(tmp_path: Path,
                                                                      mail: Path) -> None:
    """A power cut can leave a store's catalog behind its segments. A search then takes the
    archive's way, which applies the segments' tail first: the message the catalog had lost
    is found, and the next search reads the caught-up catalog alone again."""
    data = tmp_path / "data"
    mk_ok(data, "import", str(mail / "Inbox"))
    catalog = data / "stores" / "Default" / "catalog.sqlite"
    assert not catalog.with_name("catalog.sqlite-wal").exists()  # folded in on close
    saved = catalog.read_bytes()
    mk_ok(data, "import", str(mail / "Work"))
    for side in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        catalog.with_name(side).unlink(missing_ok=True)
    catalog.write_bytes(saved)  # what the catalog held before the second import's commit
    found, loaded = search_process(data, "Köln")
    assert [m["subject"] for m in found["messages"]] == ["Grüße aus Köln"]
    assert "mailkeep.core.archive" in loaded
    found, loaded = search_process(data, "Köln")
    assert [m["subject"] for m in found["messages"]] == ["Grüße aus Köln"]
    assert heavy(loaded) == []


def test_search_of_an_encrypted_store_checks_its_key(tmp_path: Path, mail: Path) -> None:
    """An encrypted store is searched only with its key at hand, as through every other
    interface: without it the store is named as not searched and the exit code says so."""
    data = tmp_path / "data"
    mk_ok(data, "store", "create", "Sealed", "--encrypt")
    mk_ok(data, "import", str(mail / "Inbox"))
    found, _loaded = search_process(data, "second")
    assert [m["subject"] for m in found["messages"]] == ["second"]
    key = data / "conf" / "master.key"
    key.rename(tmp_path / "master.key")
    res = mk(data, "search", "second")
    assert res.exit_code == 7, res.output
    assert "not searched" in res.stderr and "Sealed" in res.stderr


# -- the quick entry: the command lines it reads, click reads alike --------------------------
QUICK_TOKENS = ["search", "kernel", "-patch", "x y", "--limit", "--limit=5", "5", "10000",
                "10001", "0", "007", "-1", "abc", "1_0", " 5", "--offset", "--offset=3",
                "--json", "--json=1", "--exact", "--exact=1", "--", "--help", "-h", "--data",
                "--data=/d", "/d", "--foo", "-", "", "from:ralf", "--5", "--limit=", "show"]


def click_reading(argv: list[str]) -> tuple[Path, list[str], int, int, bool, bool] | None:
    """The search the click group runs for a command line (run_search recorded, not run);
    None if it runs none (help, a usage error, another command)."""
    from click.testing import CliRunner

    from mailkeep.cli import main, search
    calls: list[tuple[Path, list[str], int, int, bool, bool]] = []

    def record(data: Path, words: list[str], limit: int, offset: int, as_json: bool,
               exact: bool) -> int:
        calls.append((data, words, limit, offset, as_json, exact))
        return 0

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search, "run_search", record)
        CliRunner().invoke(main, list(argv), env={"MAILKEEP_DATA": "/from/env"})
    return calls[0] if calls else None


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(QUICK_TOKENS), max_size=9))
def test_the_quick_entry_reads_search_command_lines_as_click_does(argv: list[str]) -> None:
    """cli/entry.py answers a search without click only where click would run that very
    search; everything else (help, bad numbers, unknown options) is left to click."""
    from mailkeep.cli.entry import quick_args
    quick = quick_args(argv, {"MAILKEEP_DATA": "/from/env"})
    if quick is not None:
        assert click_reading(argv) == (Path(quick[0]), *quick[1:]), argv


def test_the_quick_entry_takes_the_plain_forms() -> None:
    from mailkeep.cli.entry import quick_args
    env = {"MAILKEEP_DATA": "/env"}
    assert quick_args(["search", "kernel", "-patch", "--limit", "5", "--json"], env) == (
        "/env", ["kernel", "-patch"], 5, 0, True, False)
    assert click_reading(["search", "kernel", "-patch", "--limit", "5", "--json"]) == (
        Path("/from/env"), ["kernel", "-patch"], 5, 0, True, False)  # click reads it so too
    assert quick_args(["search", "the", "--exact"], env) == ("/env", ["the"], 20, 0, False, True)
    assert quick_args(["--data=/d", "search", "--offset=3", "--", "--limit"], env) is None
    assert quick_args(["--data", "/d", "search", "a", "--", "-b", "c"], env) == (
        "/d", ["a", "-b", "c"], 20, 0, False, False)
    for left in (["search"], ["search", "x", "--help"], ["search", "x", "--limit", "lots"],
                 ["search", "x", "--limit", "10001"], ["--version"], ["show", "1:1"]):
        assert quick_args(left, env) is None, left


def test_search_into_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    """`mailkeep search ... | head -1`: the reader goes away after one line; the search stops
    with exit code 1 and no traceback, as click's commands do."""
    from tests.apiclient import archive_with_messages
    data = archive_with_messages(tmp_path / "data", tmp_path / "mail", 800,
                                 body="a body long enough to fill the pipe {i} " * 3)
    # The listing (about 50 KB) would fit in a pipe of the usual 64 KB, and the search could
    # end before the reader closed it; a pipe of one page makes the search wait on its reader.
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen([*MAILKEEP, "--data", str(data), "search", "body", "--limit",
                             "800"], stdout=write_end, stderr=subprocess.PIPE, env=clean_env())
    os.close(write_end)
    assert proc.stderr is not None
    with open(read_end, "rb") as reader:
        assert reader.readline().split() == [b"id", b"date", b"from", b"subject", b"folder"]
    # as head does after its line: the reader is gone with most of the listing unwritten
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
