"""Turning the text inside attachments on for mail stored without it: IndexAttachmentText reads
it into the index as a process, and what it did survives the process being killed."""

from __future__ import annotations

import json
from pathlib import Path

import docx

from mailkeep.core.archive import Archive
from tests.core.test_documents import KINDS, mail_with
from tests.crashpoints import stopped_at
from tests.helpers import mk, mk_ok


def contract(number: int) -> bytes:
    import io
    d = docx.Document()
    d.add_paragraph(f"Contract clause {number}")
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def found(data: Path, query: str) -> list[str]:
    got = json.loads(mk_ok(data, "call", "SearchArchive", f"query={query}",
                           "limit=200").stdout)
    return sorted(m["subject"] for m in got["messages"])


def pending(data: Path) -> int:
    [index] = json.loads(mk_ok(data, "call", "GetStoreIndexes").stdout)
    return int(index["attachmentTextPending"])


def test_the_text_inside_attachments_stored_before_is_read_into_the_index(
        tmp_path: Path) -> None:
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "a.eml").write_bytes(mail_with({"invoice.pdf": KINDS["invoice.pdf"]}, "pdf"))
    (mail / "b.eml").write_bytes(mail_with({"bundle.zip": KINDS["bundle.zip"]}, "zip"))
    (mail / "c.eml").write_bytes(b"From: a@example.org\r\nSubject: plain\r\n\r\ninvoice 4711\r\n")
    data = tmp_path / "data"
    mk_ok(data, "settings", "set", "archive.attachment_text", "false")
    mk_ok(data, "import", str(mail))
    assert found(data, "attachment:4711") == []
    assert pending(data) == 2
    # refused while the setting is off: new mail would not get the text either
    refused = mk(data, "call", "IndexAttachmentText")
    assert refused.exit_code != 0 and "archive.attachment_text is off" in refused.output
    mk_ok(data, "settings", "set", "archive.attachment_text", "true")
    result = json.loads(mk_ok(data, "call", "IndexAttachmentText").stdout)
    assert result == {"stores": 1, "messages": 2, "changed": 2, "endedWorkers": 0,
                      "skipped": []}
    assert pending(data) == 0
    assert found(data, "attachment:4711") == ["pdf"]
    assert found(data, "attachment:4719") == ["zip"]  # a Word file inside the zip
    assert found(data, "4711") == ["pdf", "plain"]
    got = json.loads(mk_ok(data, "call", "SearchArchive", "query=attachment:4711").stdout)
    assert got["messages"][0]["matchedAttachments"] == ["invoice.pdf"]
    # run again: nothing left to read
    again = json.loads(mk_ok(data, "call", "IndexAttachmentText").stdout)
    assert again["messages"] == 0
    # its rows are exact: deleting the message leaves no ghost in the index
    [pdf] = [m for m in json.loads(mk_ok(data, "call", "GetMessages", "folder=admin").stdout)
             if m["subject"] == "pdf"]
    mk_ok(data, "call", "DeleteMessage", f"id={pdf['id']}", "reason=test of the index")
    assert found(data, "attachment:4711") == []
    with Archive(data) as archive:
        _rec, store = archive.current_store()
        store.catalog.check_index()  # FTS5's own integrity check


def test_a_killed_process_goes_on_where_it_stopped(tmp_path: Path) -> None:
    mail = tmp_path / "mail"
    mail.mkdir()
    for i in range(60):
        (mail / f"{i}.eml").write_bytes(mail_with({f"contract-{i}.docx": contract(4800 + i)},
                                                  f"contract {i}"))
    data = tmp_path / "data"
    mk_ok(data, "settings", "set", "archive.attachment_text", "false")
    mk_ok(data, "import", str(mail))
    mk_ok(data, "settings", "set", "archive.attachment_text", "true")
    assert pending(data) == 60
    # killed (kill -9) just before it writes its second batch: the first one stays done
    point = "mailkeep.core.storage.store_write:Writing.replace_documents:2"
    with stopped_at(["--data", str(data), "call", "IndexAttachmentText"], point):
        pass
    assert pending(data) == 10
    assert found(data, "attachment:4800") == ["contract 0"]
    assert found(data, "attachment:4859") == []
    result = json.loads(mk_ok(data, "call", "IndexAttachmentText").stdout)
    assert result["messages"] == 10 and result["changed"] == 10
    assert found(data, "attachment:4859") == ["contract 59"]
    assert pending(data) == 0


def test_a_message_that_ends_its_worker_is_read_once_and_left_exact(tmp_path: Path) -> None:
    """Stored without the text: an ordinary message and one whose PDF takes a worker's memory
    (ending it for real). The process reads the first, marks the second as read without its
    attachment's text (a warning says why), is not tried again, and the index stays exact."""
    from tests.core.test_documents import nested_forms
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "a.eml").write_bytes(mail_with({"invoice.pdf": KINDS["invoice.pdf"]}, "pdf"))
    (mail / "b.eml").write_bytes(mail_with({"laughs.pdf": nested_forms(7)}, "laughs"))
    data = tmp_path / "data"
    mk_ok(data, "settings", "set", "archive.attachment_text", "false")
    mk_ok(data, "settings", "set", "archive.extract_memory", "256")
    mk_ok(data, "import", str(mail))
    mk_ok(data, "settings", "set", "archive.attachment_text", "true")
    result = json.loads(mk_ok(data, "call", "IndexAttachmentText").stdout)
    assert result["messages"] == 2 and result["endedWorkers"] == 1
    assert pending(data) == 0
    assert found(data, "attachment:4711") == ["pdf"]
    assert found(data, "laughs") == ["laughs"]
    again = json.loads(mk_ok(data, "call", "IndexAttachmentText").stdout)
    assert again["messages"] == 0  # not read again, not ended again
    for m in json.loads(mk_ok(data, "call", "GetMessages", "folder=admin").stdout):
        mk_ok(data, "call", "DeleteMessage", f"id={m['id']}", "reason=test of the index")
    assert found(data, "laughs") == [] and found(data, "attachment:4711") == []
    with Archive(data) as archive:
        _rec, store = archive.current_store()
        store.catalog.check_index()
        assert store.catalog.index_rowids() == set()  # no row left behind


def test_a_word_in_chinese_or_japanese_names_its_attachment(tmp_path: Path) -> None:
    mail = tmp_path / "mail"
    mail.mkdir()
    d = docx.Document()
    d.add_paragraph("本契約書は両当事者の間で締結される")
    import io
    out = io.BytesIO()
    d.save(out)
    (mail / "a.eml").write_bytes(mail_with({"keiyaku.docx": out.getvalue()}, "contract"))
    data = tmp_path / "data"
    mk_ok(data, "import", str(mail))
    got = json.loads(mk_ok(data, "call", "SearchArchive", "query=契約").stdout)
    assert [m["matchedAttachments"] for m in got["messages"]] == [["keiyaku.docx"]]
