"""A real Postfix journals into a real `mailkeep serve`: Postfix sends a copy of every message
it accepts (`always_bcc`) to mailkeep's SMTP journal receiver. Each message is archived once,
its original bytes kept as the tail of what is archived (Postfix only puts its Received header
on top), with the envelope Postfix sent it with; and while mailkeep is down Postfix keeps the
copies queued and delivers each of them exactly once when mailkeep is back."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailkeep.core.archive import Archive
from tests.helpers import TRICKY, Served, free_port, mk_ok, serving
from tests.web.postfix import JOURNAL, LOCAL_DOMAIN, Postfix

CORPUS_FILES = (
    # Plain text, with the Return-Path, Delivered-To and Received headers of an earlier hop.
    "cpython-test_email/msg_01.txt",
    # An 8-bit (UTF-8, Content-Transfer-Encoding: 8bit) body.
    "flanker/8bitmime.eml",
    # UTF-8 in the headers (RFC 6532), sent without SMTPUTF8.
    "ruby-mail/rfc6532/utf8_headers.eml",
    # A 7,080-octet line, and an unqualified address (Cc: localrecipient).
    "mime4j/testmsgs/basic-plain-very-long-lines.msg",
    # A Content-Length header, which Postfix drops by default.
    "sisimai-set-of-emails/maildir/bsd/lhost-exim-05.eml",
    # ISO-2022-JP and 8-bit bytes, a multipart bounce.
    "sisimai-set-of-emails/maildir/bsd/lhost-sendmail-01.eml",
)
SENT_BY_USER = 1  # the message whose envelope sender is the address of the mailkeep user bob
BOB = "bob@example.org"
WAIT_S = 60


def corpus_message(name: str) -> bytes:
    """A corpus message with CRLF line ends, as it goes over SMTP."""
    raw = re.sub(rb"\r\n|\r|\n", b"\r\n", (TRICKY / name).read_bytes())
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


def prepare(data: Path) -> None:
    """The receiver on 127.0.0.1 only, and a user bob whose address is BOB."""
    mk_ok(data, "settings", "set", "smtp.host", "127.0.0.1")
    mk_ok(data, "call", "CreateUser", "userName=bob", "privileges=login")
    mk_ok(data, "call", "SetUserEmailAddresses", "userName=bob", f"emailAddresses={BOB}")


@contextmanager
def mailkeep(data: Path, smtp_port: int, log: Path) -> Iterator[Served]:
    """`mailkeep serve` with its SMTP receiver on smtp_port, once that answers, writing to
    log; stopped with SIGTERM, which must end it cleanly."""
    with serving(data, "--no-tls", "--host", "127.0.0.1", "--port", str(free_port()),
                 "--smtp-port", str(smtp_port), smtp_port=smtp_port, log=log) as served:
        yield served


def archived(data: Path) -> list[tuple[bytes, str, dict[str, object] | None]]:
    """(bytes, owner/folder, envelope) of every entry in the archive, duplicates included."""
    out = []
    with Archive(data) as archive:
        for _rec, store in archive.readable_stores():
            for (number,) in store.catalog.conn.execute("SELECT number FROM entries"):
                hit = store.catalog.entry(number)
                assert hit is not None
                out.append((store.read(number), f"{hit.owner}/{hit.folder}",
                            store.catalog.envelope(number)))
    return out


def wait_journaled(pf: Postfix, qids: set[str]) -> list[tuple[str, str, str]]:
    """Waits until Postfix has logged a 250 from mailkeep for the journal copy of each of
    qids (mailkeep answers 250 only once the message is durable); returns the log's journal
    delivery attempts."""
    deadline = time.monotonic() + WAIT_S
    while True:
        attempts = pf.journal_deliveries()
        assert not [a for a in attempts if a[1] == "bounced"], attempts
        if qids <= {qid for qid, status, _text in attempts if status == "sent"}:
            return attempts
        assert time.monotonic() < deadline, (
            f"journal copies not delivered within {WAIT_S} s:\n{pf.log()}")
        time.sleep(0.2)


def check_archived(entries: list[tuple[bytes, str, dict[str, object] | None]],
                   sent: dict[str, tuple[str, bytes, str]]) -> None:
    """Each message of sent (queue ID -> sender, original bytes, owner/folder) is archived
    exactly once, in that folder: the bytes sent to Postfix, byte for byte, after one Received
    header that Postfix added (with the queue ID), and the envelope that Postfix journaled
    it with: MAIL FROM the original sender, RCPT TO the journal address. Nothing else."""
    assert len(entries) == len(sent), [(len(e[0]), e[1], e[2]) for e in entries]
    for qid, (sender, raw, folder) in sent.items():
        mine = [e for e in entries if e[0].endswith(raw)]
        assert len(mine) == 1, (qid, folder, len(mine))
        stored, where, envelope = mine[0]
        assert where == folder
        assert envelope == {"from": sender, "to": [JOURNAL]}
        added = stored[:-len(raw)]
        assert re.fullmatch(rb"Received: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*", added), added
        assert b"by mx.archive.test (Postfix) with ESMTP id " + qid.encode() in added, added


def test_postfix_journals_every_message_into_mailkeep(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare(data)
    messages = [corpus_message(name) for name in CORPUS_FILES]
    assert any(b > 127 for b in messages[1]) and any(b > 127 for b in messages[2])
    assert max(len(line) for line in messages[3].split(b"\r\n")) > 1000
    smtp_port = free_port()
    with Postfix(smtp_port) as pf, mailkeep(data, smtp_port, tmp_path / "mailkeep.log"):
        sent: dict[str, tuple[str, bytes, str]] = {}
        for i, raw in enumerate(messages):
            sender = BOB if i == SENT_BY_USER else f"sender{i}@example.org"
            qid = pf.send(sender, [f"r{i}@{LOCAL_DOMAIN}"], raw)
            sent[qid] = (sender, raw, "bob/Sent" if sender == BOB else "journal/Inbox")
        attempts = wait_journaled(pf, set(sent))
        # Each journal copy went over once, at the first attempt: nothing else was tried.
        assert sorted(qid for qid, _status, _text in attempts) == sorted(sent), attempts
        # The local copies went their own way, into the virtual Maildir.
        deadline = time.monotonic() + WAIT_S
        while sorted(pf.local_deliveries()) != sorted(sent):
            assert time.monotonic() < deadline, pf.log()
            time.sleep(0.2)
        assert len(list((pf.maildir / "new").iterdir())) == len(sent)
        assert pf.queue() == []
    check_archived(archived(data), sent)


def test_postfix_retries_while_mailkeep_is_down(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare(data)
    smtp_port = free_port()
    log = tmp_path / "mailkeep.log"
    first = corpus_message(CORPUS_FILES[0])
    queued = [corpus_message(name) for name in CORPUS_FILES[1:4]]
    with Postfix(smtp_port) as pf:
        with mailkeep(data, smtp_port, log):
            qid = pf.send("sender0@example.org", [f"r0@{LOCAL_DOMAIN}"], first)
            wait_journaled(pf, {qid})
        sent = {qid: ("sender0@example.org", first, "journal/Inbox")}
        # mailkeep is down (stopped with SIGTERM): the journal copies wait in Postfix's queue.
        down: dict[str, tuple[str, bytes, str]] = {}
        for i, raw in enumerate(queued, start=1):
            sender = BOB if i == SENT_BY_USER else f"sender{i}@example.org"
            down[pf.send(sender, [f"r{i}@{LOCAL_DOMAIN}"], raw)] = (
                sender, raw, "bob/Sent" if sender == BOB else "journal/Inbox")
        deadline = time.monotonic() + WAIT_S
        while True:
            queue = {m["queue_id"]: m for m in pf.queue()}
            if set(queue) == set(down) and all(
                    m["queue_name"] == "deferred" and [r["address"] for r in m["recipients"]]
                    == [JOURNAL] and "Connection refused" in m["recipients"][0]["delay_reason"]
                    for m in queue.values()):
                break
            assert time.monotonic() < deadline, f"{queue}\n{pf.log()}"
            time.sleep(0.2)
        listing = pf.run("postqueue", "-p")
        for qid in down:
            assert re.search(rf"^{qid}\s", listing, re.M), listing
        assert listing.count(f"127.0.0.1[127.0.0.1]:{smtp_port}: Connection refused") == 3
        assert listing.count(JOURNAL) == 3
        # Only the journal copies wait: the local ones were delivered.
        assert set(pf.local_deliveries()) == set(sent) | set(down)
        # mailkeep is back on the same port; Postfix is told to flush its queue.
        with mailkeep(data, smtp_port, log):
            pf.run("postqueue", "-f")
            attempts = wait_journaled(pf, set(down))
            deadline = time.monotonic() + WAIT_S
            while pf.queue():
                assert time.monotonic() < deadline, pf.log()
                time.sleep(0.2)
        # Exactly one 250 for each journal copy, after at least one deferral for the 3.
        for qid in (*sent, *down):
            assert [s for q, s, _t in attempts if q == qid].count("sent") == 1, attempts
        for qid in down:
            assert "deferred" in [s for q, s, _t in attempts if q == qid], attempts
    check_archived(archived(data), sent | down)
