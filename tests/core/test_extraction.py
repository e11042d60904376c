"""A message's text is extracted away from the store writer, with a deadline: a message that
costs a lot to read does not hold up the mail filed after it, and one whose text is not
extracted in time is archived byte for byte all the same, found by its headers, with a warning.

The slow message is real: many small MIME parts, each parsed (about 0.4 s of extraction here,
forty times the 0.01 s deadline the tests set; the fast one takes about a millisecond)."""

from __future__ import annotations

import queue
import smtplib
import ssl
from pathlib import Path

from mailkeep.core.admin.settings import Settings
from mailkeep.core.archive import Archive
from mailkeep.core.extraction import header_section, headers_only
from mailkeep.core.writer import Filed, Filing, StoreWriter
from tests.helpers import free_port, mk, mk_ok, serving

PART = b"--b\r\nContent-Type: text/plain\r\n\r\nwords in a part\r\n"


def slow_message(tag: str) -> bytes:
    return (f"From: Slow Sender <slow@example.org>\r\nTo: you@example.org\r\n"
            f"Subject: many parts {tag}\r\nMessage-ID: <{tag}@example.org>\r\n"
            f"Content-Type: multipart/mixed; boundary=b\r\n\r\n").encode() + PART * 20_000 + (
        b"--b\r\nContent-Type: text/plain\r\n\r\nzebrafinch in the last part\r\n--b--\r\n")


def fast_message(tag: str) -> bytes:
    return (f"From: fast@example.org\r\nTo: you@example.org\r\nSubject: ordinary {tag}\r\n"
            f"Message-ID: <{tag}@example.org>\r\n\r\nplain words kingfisher\r\n").encode()


def file_both(data: Path, timeout: float | None) -> tuple[list[str], dict[str, Filed]]:
    """Submit the slow message, then the fast one; the order their answers came in."""
    answers: queue.Queue[tuple[str, Filed | BaseException]] = queue.Queue()
    with Archive(data) as archive:
        master = archive.master
        if timeout is not None:
            Settings(master).put("archive.extract_timeout", timeout)
        with StoreWriter(data, master) as writer:
            for name, raw in (("slow", slow_message("s1")), ("fast", fast_message("f1"))):
                writer.submit(Filing([("alice", "Inbox")],
                                     lambda outcome, n=name: answers.put((n, outcome)),
                                     raw=raw))
            got = [answers.get(timeout=60), answers.get(timeout=60)]
    for name, outcome in got:
        assert isinstance(outcome, Filed), (name, outcome)
        assert not outcome.duplicate
    return [name for name, _ in got], {name: outcome for name, outcome in got
                                       if isinstance(outcome, Filed)}


def found(data: Path, query: str) -> list[str]:
    with Archive(data) as archive:
        return [h.hit.subject for h in archive.search(query, limit=10).hits]


def test_a_slow_message_does_not_hold_up_the_next(data: Path) -> None:
    order, filed = file_both(data, None)  # the default deadline (20 s): both are extracted
    assert order == ["fast", "slow"]
    assert filed["slow"].warnings == []
    assert found(data, "zebrafinch") == ["many parts s1"]  # its text was indexed, late
    assert found(data, "kingfisher") == ["ordinary f1"]


def test_text_not_extracted_in_time_archived_all_the_same(data: Path) -> None:
    _order, filed = file_both(data, 0.01)
    [note] = filed["slow"].warnings
    assert note == "text not indexed (not extracted within 0.01 s): found by its headers only"
    with Archive(data) as archive:
        rec, store, number = archive.message(filed["slow"].numbers[0])
        assert store.read(number) == slow_message("s1")  # byte for byte
        assert store.catalog.entry_warnings(number) == [note]
    assert found(data, "zebrafinch") == []  # the text is not in the index...
    assert found(data, "from:slow@example.org") == ["many parts s1"]  # ...its headers are
    assert found(data, "subject:parts") == ["many parts s1"]
    assert found(data, "kingfisher") == ["ordinary f1"]


def test_headers_only_reads_a_bounded_header_section() -> None:
    raw = b"Subject: " + b"=?utf-8?q?a?=\r\n " * 100_000 + b"x\r\n\r\nbody\r\n"
    head = header_section(raw)
    assert len(head) <= 256 << 10 and head.endswith(b"\n")
    fields = headers_only(raw, "why")
    assert fields.subject.startswith("aaaa") and fields.body == ""
    assert fields.warnings[0] == "text not indexed (why): found by its headers only"
    message = b"From: a@example.org\nSubject: s\n\nbody text\n"
    assert header_section(message) == b"From: a@example.org\nSubject: s\n\n"


def test_journal_archives_what_it_cannot_read_in_time(tmp_path: Path) -> None:
    """Through a real server: the sender gets its 250, `mailkeep show` says why the text is
    not searchable, and a search by the headers finds it."""
    data = tmp_path / "data"
    mk_ok(data, "settings", "set", "archive.extract_timeout", "0.01")
    smtp_port = free_port()
    with serving(data, "--host", "127.0.0.1", "--port", str(free_port()),
                 "--smtp-port", str(smtp_port), smtp_port=smtp_port), \
            smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client:
        client.starttls(context=ssl._create_unverified_context())  # the server's own cert
        client.ehlo()
        assert client.sendmail("mta@example.org", ["you@example.org"],
                               slow_message("s2")) == {}
    shown = mk(data, "search", "subject:parts").output
    assert "many parts s2" in shown
    assert mk(data, "search", "zebrafinch").output.count("many parts") == 0
    out = mk_ok(data, "show", "1:1").output
    assert "Indexed with a warning: text not indexed (not extracted within 0.01 s)" in out


def test_an_attachment_that_ends_its_worker_leaves_the_message_searchable(data: Path) -> None:
    """A 2 KB PDF whose reading would take gigabytes ends the extraction worker for real
    (setting archive.extract_memory): the message is read again without its attachments' text,
    filed with a warning saying so, and found by its body; the next message is not held up."""
    from email.message import EmailMessage

    from tests.core.test_documents import nested_forms
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "x@example.org", "you@example.org", "laughs"
    m.set_content("the body says pelican")
    m.add_attachment(nested_forms(7), maintype="application", subtype="pdf",
                     filename="laughs.pdf")
    answers: queue.Queue[tuple[str, Filed | BaseException]] = queue.Queue()
    with Archive(data) as archive:
        Settings(archive.master).put("archive.extract_memory", 256)
        with StoreWriter(data, archive.master) as writer:
            for name, raw in (("hostile", bytes(m)), ("fast", fast_message("f2"))):
                writer.submit(Filing([("alice", "Inbox")],
                                     lambda outcome, n=name: answers.put((n, outcome)),
                                     raw=raw))
            got = dict([answers.get(timeout=120), answers.get(timeout=120)])
    hostile = got["hostile"]
    assert isinstance(hostile, Filed)
    assert any("reading it ended the worker" in w for w in hostile.warnings)
    assert found(data, "pelican") == ["laughs"]  # its body is indexed
    assert found(data, "kingfisher") == ["ordinary f2"]


def test_work_handed_to_the_writer_runs_between_its_batches(data: Path) -> None:
    """run_task: the writer's archive, a result or an exception back to the caller, mail filed
    before and after; a task that asks the writer for another would wait for itself: refused;
    a task left queued when the writer stops is told so instead of waiting for ever."""
    from mailkeep.core.writer import _Task
    answers: queue.Queue[tuple[str, Filed | BaseException]] = queue.Queue()
    with Archive(data) as archive:
        master = archive.master
        writer = StoreWriter(data, master)
        with writer:
            writer.submit(Filing([("alice", "Inbox")], lambda o: answers.put(("a", o)),
                                 raw=fast_message("t1")))
            assert writer.run_task(lambda a: a.current_store()[0].name) == "Default"

            def boom(_archive: Archive) -> None:
                raise ValueError("the task's own error")
            try:
                writer.run_task(boom)
                raise AssertionError("no exception")
            except ValueError as exc:
                assert str(exc) == "the task's own error"
            nested: list[BaseException] = []

            def inner(_archive: Archive) -> None:
                try:
                    writer.run_task(lambda a: None)
                except RuntimeError as exc:
                    nested.append(exc)
            writer.run_task(inner)
            assert nested and "writer thread" in str(nested[0])
            writer.submit(Filing([("alice", "Inbox")], lambda o: answers.put(("b", o)),
                                 raw=fast_message("t2")))
            got = dict([answers.get(timeout=60), answers.get(timeout=60)])
            assert all(isinstance(o, Filed) and o.numbers for o in got.values())
        # the writer stopped: a task found in its queue is refused, not left waiting
        late = _Task(lambda a: None)
        writer.queue.put(late)
        writer._refuse_queued()
        try:
            late.future.result(timeout=5)
            raise AssertionError("no exception")
        except RuntimeError as exc:
            assert "stopped" in str(exc)
