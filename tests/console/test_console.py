"""The web console in a real browser (Chromium, through Playwright), against a real
`mailkeep serve` over HTTPS: logging in, searching, reading, downloading; a user sees their own
archive only, whatever the page is made to ask; and hostile mail, shown in the console, runs no
script and makes no request to any other host."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.console.browser import browser, console_server, log_in, remote_world, user
from tests.helpers import free_port, master_sql, mk_ok

PDF = b"%PDF-1.4\n% invoice 4711\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
PNG = base64.b64decode(  # one pixel
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def eml(subject: str, sender: str, body: str, html: str | None = None,
        attachment: tuple[str, str, bytes] | list[tuple[str, str, bytes]] | None = None,
        date: str = "Mon, 02 Mar 2026 10:00:00 +0000") -> bytes:
    """A message with a text part, an HTML alternative and attachments (those given)."""
    tag = hashlib.sha256(f"{subject}{sender}{body}".encode()).hexdigest()[:16]
    head = (f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Date: {date}\r\nMessage-ID: <{tag}@example.org>\r\nMIME-Version: 1.0\r\n")
    attachments = [attachment] if isinstance(attachment, tuple) else attachment or []
    if html is None and not attachments:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n").encode()
    parts = [f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"]
    if html is not None:
        parts.append(f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n")
    inner = "--alt\r\n" + "--alt\r\n".join(parts) + "--alt--\r\n"
    if not attachments:
        return (head + "Content-Type: multipart/alternative; boundary=alt\r\n\r\n" + inner).encode()
    out = (head + "Content-Type: multipart/mixed; boundary=mix\r\n\r\n--mix\r\n"
           "Content-Type: multipart/alternative; boundary=alt\r\n\r\n" + inner)
    for name, ctype, data in attachments:
        b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
        out += (f"--mix\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: "
                f"attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                f"{b64}")
    return (out + "--mix--\r\n").encode()


def archive_mail(data: Path, tmp: Path, owner: str, messages: list[bytes]) -> None:
    folder = tmp / f"mail-{owner}"
    folder.mkdir()
    for i, raw in enumerate(messages):
        (folder / f"{i}.eml").write_bytes(raw)
    mk_ok(data, "import", "--user", owner, "--folder", "Inbox", str(folder))


@pytest.fixture
def page() -> Iterator[Page]:
    with browser() as chromium:
        context = chromium.new_context(ignore_https_errors=True, accept_downloads=True)
        yield context.new_page()
        context.close()


def test_search_read_and_download(tmp_path: Path, page: Page) -> None:
    """alice logs in, sees her three messages newest first with the total, searches with the
    command line's syntax (Enter), opens a message (its HTML body in the frame "Message body"),
    downloads its PDF attachment and the original .eml, byte for byte; ↓ moves to the next
    result. bob's message is nowhere in her console."""
    data = tmp_path / "data"
    user(data, "alice", "Alice-pass-1")
    user(data, "bob", "Bob-pass-1")
    invoice = eml("Quarterly invoice 4711", "Billing <billing@vendor.example>", "See the PDF.",
                  html="<p>Hello <b>Alice</b>, your invoice is attached.</p>",
                  attachment=[("invoice-4711.pdf", "application/pdf", PDF),
                              ("scan.png", "image/png", PNG)],
                  date="Tue, 03 Mar 2026 09:00:00 +0000")
    archive_mail(data, tmp_path, "alice", [
        invoice,
        eml("Lunch on Friday", "Carol <carol@example.org>", "Pizza?",
            date="Mon, 02 Mar 2026 12:00:00 +0000"),
        eml("Release notes", "Dev <dev@example.org>", "Version 2 is out.",
            date="Sun, 01 Mar 2026 08:00:00 +0000")])
    archive_mail(data, tmp_path, "bob", [eml("Bob private salary", "HR <hr@example.org>",
                                             "Confidential.")])
    with console_server(data) as base:
        log_in(page, base, "alice", "Alice-pass-1")
        rows = page.locator("table tbody tr")
        expect(rows).to_have_count(3)
        expect(page.get_by_role("status")).to_contain_text("1–3 of 3")
        expect(rows.nth(0)).to_contain_text("Quarterly invoice 4711")  # newest first
        expect(page.get_by_text("Bob private salary")).to_have_count(0)
        search = page.get_by_role("searchbox", name="Search")
        search.fill("subject:invoice")
        search.press("Enter")
        expect(rows).to_have_count(1)
        rows.nth(0).click()
        frame = page.frame_locator('iframe[title="Message body"]')
        expect(frame.locator("body")).to_contain_text("your invoice is attached")
        with page.expect_download() as got:
            page.get_by_role("link", name="invoice-4711.pdf").click()
        assert Path(got.value.path()).read_bytes() == PDF
        with page.expect_download() as got:
            page.get_by_role("link", name="Download original (.eml)").click()
        assert Path(got.value.path()).read_bytes() == invoice
        page.get_by_role("button", name="Preview").click()  # the PNG, as an image
        expect(page.locator(".preview img")).to_have_attribute("alt", "scan.png")
        assert page.locator(".preview img").evaluate("i => i.complete && i.naturalWidth") == 1
        search.fill("")
        search.press("Enter")
        expect(rows).to_have_count(3)
        rows.nth(0).click()
        page.keyboard.press("ArrowDown")
        expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
        expect(page.locator("section.reader h2")).to_have_text("Lunch on Friday")
        search.fill("salary")
        search.press("Enter")
        expect(page.get_by_role("status")).to_contain_text("No messages match")


def test_the_server_keeps_a_user_to_their_own_archive(tmp_path: Path, page: Page) -> None:
    """The page is not what keeps bob's mail from alice: asked directly with her session, the
    server finds nothing of bob's (a search naming his archive, his message by id), until a
    folder of his is granted to her (SetUserPrivilegesOnFolder)."""
    data = tmp_path / "data"
    user(data, "alice", "Alice-pass-1")
    user(data, "bob", "Bob-pass-1")
    archive_mail(data, tmp_path, "alice", [eml("Alice note", "a@example.org", "mine")])
    archive_mail(data, tmp_path, "bob", [eml("Bob private salary", "hr@example.org", "secret")])
    found = json.loads(mk_ok(data, "search", "--json", "salary").stdout)
    bob_id = found["messages"][0]["id"]
    with console_server(data) as base:
        log_in(page, base, "alice", "Alice-pass-1")

        def ask(path: str, body: dict[str, object]) -> dict[str, object]:
            result: dict[str, object] = page.evaluate(
                """async ([path, body]) => {
                    const r = await fetch('/mcapi/' + path, {method: 'POST',
                      headers: {'Content-Type': 'application/json',
                                'X-Fs-SessionId': sessionStorage.getItem('mk.sid')},
                      body: JSON.stringify(body)});
                    return (await r.json()).result; }""", [path, body])
            return result

        assert ask("archive/search", {"query": "user:bob"})["data"]["total"] == 0  # type: ignore[index]
        assert ask("archive/search", {"query": "salary"})["data"]["total"] == 0  # type: ignore[index]
        refused = ask("archive/message", {"id": bob_id})
        assert refused["status"] == "error" and "does not exist" in str(refused["message"])
        mk_ok(data, "call", "SetUserPrivilegesOnFolder", "userName=alice", "folder=bob/Inbox",
              "privileges=read")
        assert ask("archive/search", {"query": "salary"})["data"]["total"] == 1  # type: ignore[index]
        assert ask("archive/message", {"id": bob_id})["status"] == "success"


def hostile(remote: str) -> list[tuple[str, bytes]]:
    """Mail that tries to run script in the console or reach another host (`remote`)."""
    pwn = "top.document.title='pwned';parent.postMessage('pwned','*')"
    html = {
        "script": f"<script>{pwn};fetch('{remote}/script')</script><p>script</p>",
        "event handler": f"<img src=x onerror=\"{pwn}\"><p onmouseover=\"{pwn}\">handler</p>",
        "svg onload": f"<svg onload=\"{pwn}\"><feImage href=\"{remote}/feimage\"/></svg>svg",
        "css url and import": (f"<style>@import url({remote}/import.css); body{{background:"
                               f"url({remote}/bg.png)}}</style><p style=\"background:url("
                               f"{remote}/style.png)\">css</p>"),
        "meta refresh": f"<meta http-equiv=\"refresh\" content=\"0;url={remote}/refresh\">meta",
        "base href": f"<base href=\"{remote}/base/\"><img src=\"pic.png\"><a href=\"x\">base</a>",
        "javascript link": f"<a href=\"javascript:{pwn}\" id=js>javascript link</a>",
        "form": f"<form action=\"{remote}/form\" method=post><input name=q value=1>"
                "<button>send</button></form>",
        "remote image": f"<img src=\"{remote}/track.png\"><p>remote</p>",
        "frames and objects": (f"<iframe src=\"{remote}/frame\"></iframe><object data=\""
                               f"{remote}/object\"></object><link rel=stylesheet href=\""
                               f"{remote}/link.css\"><video src=\"{remote}/v.mp4\"></video>"),
    }
    out = [(name, eml(f"hostile {name}", "x@attacker.example", "see html", html=body))
           for name, body in html.items()]
    out.append(("html subject and file name", eml(
        "<img src=x onerror=alert(1)><b>bold</b>", "<script>alert(1)</script> <x@a.example>",
        "text <script>alert(1)</script>",
        attachment=("<b>page</b>.html", "text/html",
                    f"<script>{pwn}</script><img src={remote}/att.png>".encode()))))
    out.append(("svg attachment", eml("hostile svg attachment", "x@attacker.example", "svg",
                                      attachment=("pic.svg", "image/svg+xml",
                                                  f"<svg xmlns='http://www.w3.org/2000/svg' "
                                                  f"onload=\"{pwn}\"><image href='{remote}/"
                                                  "svgimg'/></svg>".encode()))))
    return out


def test_hostile_mail_runs_nothing_and_reaches_nobody(tmp_path: Path, page: Page) -> None:
    """Each hostile message opened in the console, its links and attachments clicked: no script
    of it runs (the page's title stays, no dialog opens, no message is posted to the page), and
    neither the browser nor the server sends any request to the other host; the subject and
    file names that are HTML are shown as text."""
    data = tmp_path / "data"
    user(data, "alice", "Alice-pass-1")
    with remote_world() as world:
        mails = hostile(world.origin)
        archive_mail(data, tmp_path, "alice", [raw for _name, raw in mails])
        with console_server(data) as base:
            dialogs: list[str] = []
            elsewhere: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: elsewhere.append(r.url)
                    if not r.url.startswith(base) and not r.url.startswith("data:") else None)
            log_in(page, base, "alice", "Alice-pass-1")
            page.evaluate("window.addEventListener('message', e => "
                          "document.body.dataset.posted = String(e.data))")
            rows = page.locator("table tbody tr")
            expect(rows).to_have_count(len(mails))
            for i in range(len(mails)):
                rows.nth(i).click()
                reader = page.locator("section.reader")
                expect(reader).to_have_attribute("data-id", rows.nth(i).get_attribute("data-id")
                                                 or "?")
                frame = page.locator('iframe[title="Message body"]')
                if frame.count():
                    body = page.frame_locator('iframe[title="Message body"]').locator("body")
                    body.wait_for(state="attached")
                    for link in body.locator("a").all():
                        link.click(modifiers=[], force=True, no_wait_after=True)
                    for button in body.locator("button").all():
                        button.click(force=True, no_wait_after=True)
                for link in reader.locator("ul.parts a").all():
                    with page.expect_download():
                        link.click()
                assert page.title() == "mailkeep", mails[i][0]
            expect(page.get_by_text("<img src=x onerror=alert(1)><b>bold</b>")).to_have_count(1)
            assert page.evaluate("document.body.dataset.posted") is None
            assert dialogs == []
            assert elsewhere == [], elsewhere
    assert world.seen == [], world.seen


def test_export_a_selection_and_all_results(tmp_path: Path, page: Page) -> None:
    """Two results ticked and exported as mbox, imported into another archive: the same bytes;
    all results of a search exported as a zip: one .eml per message, byte for byte. The buttons
    name their scope. The filter bar writes the search's tokens."""
    data = tmp_path / "data"
    user(data, "alice", "Alice-pass-1")
    mails = [eml(f"Report {i}", f"Sender {i} <s{i}@example.org>", f"From the start\nbody {i}",
                 date=f"Mon, 0{i + 1} Mar 2026 10:00:00 +0000") for i in range(4)]
    archive_mail(data, tmp_path, "alice", mails)
    with console_server(data) as base:
        log_in(page, base, "alice", "Alice-pass-1")
        rows = page.locator("table tbody tr")
        expect(rows).to_have_count(4)
        page.get_by_role("checkbox", name="Select Report 3").check()
        page.get_by_role("checkbox", name="Select Report 1").check()
        with page.expect_download() as got:
            page.get_by_role("button", name="Export 2 selected").click()
        mbox = tmp_path / "selected.mbox"
        got.value.save_as(mbox)
        page.get_by_label("Export format").select_option("zip")
        page.get_by_text("Filters", exact=True).click()
        page.get_by_label("From").fill("Sender 2")
        page.get_by_role("button", name="Apply filters").click()
        expect(page.get_by_role("searchbox", name="Search")).to_have_value('from:"Sender 2"')
        expect(rows).to_have_count(1)
        page.get_by_role("searchbox", name="Search").fill("")
        page.get_by_role("searchbox", name="Search").press("Enter")
        expect(rows).to_have_count(4)
        with page.expect_download() as got:
            page.get_by_role("button", name="Export all 4 results").click()
        archive_zip = tmp_path / "all.zip"
        got.value.save_as(archive_zip)
    other = tmp_path / "other"
    mk_ok(other, "import", str(mbox))
    exported = json.loads(mk_ok(other, "search", "--json", "").stdout)["messages"]
    assert sorted(m["subject"] for m in exported) == ["Report 1", "Report 3"]
    for m in exported:
        raw = mk_ok(other, "show", "--raw", m["id"]).stdout_bytes
        assert raw in (mails[1], mails[3])
    with zipfile.ZipFile(archive_zip) as zipped:
        assert sorted(zipped.read(n) for n in zipped.namelist()) == sorted(mails)


def test_first_login_asks_for_a_new_password(tmp_path: Path, page: Page) -> None:
    """admin with the initial password (from this machine): the console asks for a new one
    before anything else, refuses two that differ, then logs in with the new one; the old one
    no longer works, through the console API as through the page."""
    data = tmp_path / "data"
    mk_ok(data, "settings", "list")  # the data directory, with its initial admin
    with console_server(data) as base:
        page.goto(base + "/")
        page.get_by_label("User name").fill("admin")
        page.get_by_label("Password").fill("admin")
        page.get_by_role("button", name="Log in").click()
        page.get_by_label("New password", exact=True).fill("Better-pass-42")
        page.get_by_label("Repeat the new password").fill("Better-pass-43")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_role("alert")).to_have_text("The two new passwords differ.")
        page.get_by_label("Repeat the new password").fill("Better-pass-42")
        page.get_by_role("button", name="Change password").click()
        page.get_by_role("searchbox", name="Search").wait_for()
        page.get_by_role("button", name="Log out").click()
        page.get_by_label("Password").fill("admin")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")
        page.get_by_label("Password").fill("Better-pass-42")
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("searchbox", name="Search").wait_for()


def test_sort_and_page_size(tmp_path: Path, page: Page) -> None:
    """The sort and the page size the user picks: by subject A to Z, by size, oldest first;
    pages of 25 with the pager; both kept for the next visit."""
    data = tmp_path / "data"
    user(data, "alice", "Alice-pass-1")
    mails = [eml(f"Subject {chr(ord('A') + (i * 7) % 26)}{i:02d}", f"s{i}@example.org",
                 "x" * (100 * i), date=f"Mon, {1 + i % 28:02d} Jun 2025 10:00:00 +0000")
             for i in range(30)]
    archive_mail(data, tmp_path, "alice", mails)
    with console_server(data) as base:
        log_in(page, base, "alice", "Alice-pass-1")
        rows = page.locator("table tbody tr")
        expect(rows).to_have_count(30)
        page.get_by_label("Sort").select_option("subject-asc")
        expect(rows.first).to_contain_text("Subject A00")
        subjects = [s.strip() for s in page.locator("td.subject").all_inner_texts()]
        assert subjects == sorted(subjects, key=str.lower)
        page.get_by_label("Sort").select_option("size-desc")
        expect(rows.first).to_contain_text("Subject")
        sizes = [page.locator("tbody tr").nth(i).get_attribute("data-id") for i in range(3)]
        assert len(set(sizes)) == 3
        page.get_by_label("Page size").select_option("25")
        expect(rows).to_have_count(25)
        expect(page.get_by_role("status")).to_contain_text("1–25 of 30")
        page.get_by_role("button", name="Next page").click()
        expect(rows).to_have_count(5)
        page.reload()
        expect(page.get_by_label("Page size")).to_have_value("25")
        expect(page.get_by_label("Sort")).to_have_value("size-desc")


def test_past_ten_thousand_matches_the_total_is_said_to_be_about(tmp_path: Path,
                                                                 page: Page) -> None:
    """A search with more than 10,000 matches answers with an estimated total: the console
    says "about", and the next page is there while pages are full; a search with fewer says
    its exact total."""
    data = tmp_path / "data"
    user(data, "alice", "Alice-pass-1")
    box = tmp_path / "many.mbox"
    with box.open("wb") as out:
        for i in range(10_100):
            day = 1 + i % 28
            out.write(f"From m{i}@example.org Mon Jan  1 00:00:00 2024\n"
                      f"From: m{i}@example.org\nTo: alice@example.org\nSubject: Note {i}\n"
                      f"Date: {day:02d} {('Jan', 'Apr', 'Jul', 'Oct')[i % 4]} {2020 + i % 5}"
                      f" 10:{i % 60:02d}:00 +0000\nMessage-ID: <m{i}@example.org>\n\n"
                      f"routine {'rarity ' if i % 1000 == 0 else ''}words\n\n".encode())
    mk_ok(data, "import", "--user", "alice", "--folder", "Inbox", str(box))
    with console_server(data) as base:
        log_in(page, base, "alice", "Alice-pass-1")
        status = page.get_by_role("status")
        expect(status).to_contain_text(re.compile(r"1–50 of about 1[01],[0-9]00(?![0-9,])"))
        next_page = page.get_by_role("button", name="Next page")
        expect(next_page).to_be_enabled()
        next_page.click()
        expect(status).to_contain_text(re.compile(r"51–100 of about"))
        search = page.get_by_role("searchbox", name="Search")
        search.fill("rarity")
        search.press("Enter")
        expect(status).to_contain_text("1–11 of 11")
        expect(status).not_to_contain_text("about")


def test_import_by_upload(tmp_path: Path, page: Page) -> None:
    """alice (privilege archive) chooses an .eml, an mbox.gz and a zip of .eml files: each is
    imported into the folder she named, byte for byte, and shows up; sent again, they are
    already archived. bob, without the privilege archive, is refused by the server."""
    data = tmp_path / "data"
    user(data, "alice", "Alice-pass-1")
    mk_ok(data, "call", "SetUserPrivileges", "userName=alice", "privileges=login,archive")
    user(data, "bob", "Bob-pass-1")
    one = eml("Uploaded single", "u@example.org", "single")
    boxed = [eml(f"Boxed {i}", "m@example.org", f"From here\nboxed {i}") for i in range(3)]
    zipped = [eml(f"Zipped {i}", "z@example.org", f"zipped {i}") for i in range(2)]
    files = tmp_path / "files"
    files.mkdir()
    (files / "single.eml").write_bytes(one)
    with gzip.open(files / "box.mbox.gz", "wb") as out:
        for raw in boxed:
            out.write(b"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n"
                      + re.sub(rb"(?m)^(>*From )", rb">\1", raw) + b"\n")
    with zipfile.ZipFile(files / "some.zip", "w") as z:
        for i, raw in enumerate(zipped):
            z.writestr(f"dir/../m{i}.eml", raw)
    with console_server(data) as base:
        log_in(page, base, "alice", "Alice-pass-1")
        page.get_by_label("Into folder").fill("Old/2019")
        page.get_by_label("Files of mail").set_input_files(
            [str(files / n) for n in ("single.eml", "box.mbox.gz", "some.zip")])
        status = page.locator(".upload-status")
        expect(status).to_contain_text("single.eml: 1 archived", timeout=30_000)
        expect(status).to_contain_text("box.mbox.gz: 3 archived", timeout=30_000)
        expect(status).to_contain_text("some.zip: 2 archived", timeout=30_000)
        expect(page.locator("table tbody tr")).to_have_count(6)
        page.get_by_label("Files of mail").set_input_files(str(files / "single.eml"))
        expect(status).to_contain_text("single.eml: 0 archived, 1 already archived",
                                       timeout=30_000)
        page.get_by_role("button", name="Log out").click()
        log_in(page, base, "bob", "Bob-pass-1")
        page.get_by_label("Files of mail").set_input_files(str(files / "single.eml"))
        expect(page.locator(".upload-status .error")).to_contain_text("privilege archive")
    found = json.loads(mk_ok(data, "search", "--json", "--limit", "50", "").stdout)["messages"]
    assert sorted((m["folder"], m["subject"]) for m in found) == sorted(
        ("Old/2019", s) for s in ["Uploaded single", "Zipped 0", "Zipped 1", "Boxed 0",
                                  "Boxed 1", "Boxed 2"])
    stored = {mk_ok(data, "show", "--raw", m["id"]).stdout_bytes for m in found}
    assert stored == {one, *boxed, *zipped}
    assert not any((data / "uploads").iterdir())  # nothing left behind


def test_administration_runs_functions_with_live_progress(tmp_path: Path, page: Page) -> None:
    """An administrator opens the administration: the dashboard lists the stores; CreateStore
    run from its form makes a store (seen on the dashboard after), and VerifyStores, a process,
    shows its progress and ends with its report. An operator's console lists only what its
    role may call, and the server refuses the rest whatever the page sends."""
    data = tmp_path / "data"
    mk_ok(data, "call", "CreateUser", "userName=boss", "privileges=admin,login",
          "password=Boss-pass-1")
    mk_ok(data, "call", "CreateUser", "userName=oper", "privileges=login",
          "password=Oper-pass-1")
    mk_ok(data, "call", "SetUserRole", "userName=oper", "role=operator")
    archive_mail(data, tmp_path, "boss", [eml(f"m{i}", "a@example.org", "x") for i in range(20)])
    with console_server(data) as base:
        log_in(page, base, "boss", "Boss-pass-1")
        page.get_by_role("button", name="Administration").click()
        stores = page.get_by_role("region", name="Stores")
        expect(stores).to_contain_text("Default")
        page.get_by_role("button", name="Functions").click()
        page.get_by_label("Function", exact=True).select_option("CreateStore")
        page.get_by_label("name", exact=True).fill("Second")
        page.get_by_role("button", name="Run").click()
        expect(page.get_by_role("status")).to_have_text("succeeded")
        page.get_by_label("Function", exact=True).select_option("VerifyStores")
        page.get_by_label("report", exact=True).check()
        page.get_by_role("button", name="Run").click()
        expect(page.get_by_role("status")).to_have_text("succeeded", timeout=30_000)
        expect(page.get_by_label("Result")).to_contain_text('"messages": 20')
        page.get_by_role("button", name="Dashboard").click()
        expect(stores).to_contain_text("Second")
        # a store's own buttons: create one, verify one, its outcome beside it
        page.get_by_label("New store").fill("Third")
        page.get_by_role("button", name="Create").click()
        expect(stores).to_contain_text("Third")
        stores.get_by_role("button", name="Verify Default").click()
        expect(stores.get_by_role("status")).to_contain_text("Done: 20 messages, no problems",
                                                            timeout=30_000)
        page.get_by_role("button", name="Archive").click()
        page.get_by_role("button", name="Log out").click()
        log_in(page, base, "oper", "Oper-pass-1")
        page.get_by_role("button", name="Administration").click()
        page.get_by_role("button", name="Functions").click()
        expect(page.get_by_label("Function", exact=True).locator("option").first).to_be_attached()
        offered = page.get_by_label("Function", exact=True).locator("option").all_inner_texts()
        assert "CreateStore (not for your role)" in offered and "GetSmtpSettings" in offered
        page.get_by_label("Function", exact=True).select_option("CreateStore")
        expect(page.get_by_text("Your role may not call this function.")).to_be_visible()
        expect(page.get_by_role("button", name="Run")).to_be_disabled()
        refused = page.evaluate("""async () => {
            const r = await fetch('/mcapi/function/invoke', {method: 'POST', headers: {
              'Content-Type': 'application/json',
              'X-Fs-SessionId': sessionStorage.getItem('mk.sid')},
              body: JSON.stringify({name: 'CreateStore', args: {name: 'Fourth'}})});
            return (await r.json()).result; }""")
        assert refused["status"] == "error" and refused["code"] == 3002
    assert "Fourth" not in mk_ok(data, "store", "list").stdout


def test_audit_log_page_and_csv(tmp_path: Path, page: Page) -> None:
    """The audit log in the console: what was done (a store created, a full name set), newest
    first, filtered by event; the CSV download holds the filtered records, one a line."""
    data = tmp_path / "data"
    mk_ok(data, "call", "CreateUser", "userName=boss", "privileges=admin,login",
          "password=Boss-pass-1")
    mk_ok(data, "store", "create", "Audited")
    mk_ok(data, "call", "SetUserFullName", "userName=boss", "fullName=-2+3 Boss")
    with console_server(data) as base:
        log_in(page, base, "boss", "Boss-pass-1")
        page.get_by_role("button", name="Administration").click()
        page.get_by_role("button", name="Audit log").click()
        table = page.get_by_role("table", name="Audit log")
        expect(table.locator("tbody tr").first).to_contain_text("session.login")  # newest first
        expect(table).to_contain_text("SetUserFullName")
        expect(table).to_contain_text("CreateStore")
        page.get_by_label("Event").fill("CreateStore")
        page.get_by_role("button", name="Show").click()
        expect(table.locator("tbody tr")).to_have_count(1)
        with page.expect_download() as got:
            page.get_by_role("button", name="Download as CSV").click()
        lines = Path(got.value.path()).read_bytes().decode().strip().split("\r\n")
        assert lines[0] == '"id","at","actor","action","details"'
        assert len(lines) == 2 and '"CreateStore"' in lines[1] and "Audited" in lines[1]
        page.get_by_role("button", name="Verify the hash chain").click()
        expect(page.get_by_role("status").filter(has_text="hash chain")).to_contain_text(
            "The audit log's hash chain is intact")
    with master_sql(data) as conn:  # an insider edits a record
        conn.execute("UPDATE audit SET actor = 'cli:nobody' WHERE action = 'CreateStore'")
    with console_server(data) as base:
        log_in(page, base, "boss", "Boss-pass-1")
        page.get_by_role("button", name="Administration").click()
        page.get_by_role("button", name="Audit log").click()
        page.get_by_role("button", name="Verify the hash chain").click()
        expect(page.get_by_role("status").filter(has_text="hash chain")).to_contain_text(
            "broken")


def test_notification_mail_saved_and_tested(tmp_path: Path, page: Page) -> None:
    """An administrator sets the notification mail in the console and sends the test mail: a
    real SMTP server (aiosmtpd) receives it. With a port where nothing listens, the page says
    the test failed and the log names the step (connecting)."""
    from aiosmtpd.controller import Controller

    received: list[bytes] = []

    class Keep:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
            received.append(envelope.original_content)
            return "250 OK"

    smtp_port, closed_port = free_port(), free_port()
    controller = Controller(Keep(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    data = tmp_path / "data"
    mk_ok(data, "call", "CreateUser", "userName=boss", "privileges=admin,login",
          "password=Boss-pass-1")
    try:
        with console_server(data) as base:
            log_in(page, base, "boss", "Boss-pass-1")
            page.get_by_role("button", name="Administration").click()
            page.get_by_role("button", name="Notification mail").click()
            page.get_by_label("serverName").fill("127.0.0.1")
            page.get_by_label("port", exact=True).fill(str(smtp_port))
            page.get_by_label("fromMailAddress").fill("mailkeep@example.org")
            page.get_by_label("toMailAddress").fill("admin@example.org")
            page.get_by_role("button", name="Save").click()
            status = page.get_by_role("status")
            expect(status).to_have_text("Saved.")
            page.get_by_role("button", name="Send test mail").click()
            expect(status).to_contain_text("succeeded", timeout=30_000)
            assert len(received) == 1 and b"admin@example.org" in received[0]
            page.get_by_label("port", exact=True).fill(str(closed_port))
            page.get_by_role("button", name="Save").click()
            expect(status).to_have_text("Saved.")
            page.get_by_role("button", name="Send test mail").click()
            expect(status).to_contain_text("failed", timeout=30_000)
            expect(page.get_by_label("Log")).to_contain_text("connect")
    finally:
        controller.stop()
    assert len(received) == 1


def test_the_folder_tree(tmp_path: Path, page: Page) -> None:
    """Folders as a tree (a level without mail of its own too), collapsed below the archive and
    opened with their toggle; choosing one shows its mail and its subfolders'."""
    data = tmp_path / "data"
    user(data, "alice", "Alice-pass-1")
    for folder, count in (("Inbox", 2), ("Old/2019", 3), ("Old/2020", 1)):
        source = tmp_path / folder.replace("/", "-")
        source.mkdir()
        for i in range(count):
            (source / f"{i}.eml").write_bytes(eml(f"{folder} {i}", "a@example.org", folder))
        mk_ok(data, "import", "--user", "alice", "--folder", folder, str(source))
    with console_server(data) as base:
        log_in(page, base, "alice", "Alice-pass-1")
        tree = page.get_by_role("navigation", name="Folders")
        expect(tree.get_by_role("button", name="Old 0 / 4")).to_be_visible()
        expect(tree.get_by_role("button", name="2019 3")).to_be_hidden()
        tree.get_by_role("button", name="Show or hide the folders in alice/Old").click()
        tree.get_by_role("button", name="2019 3").click()
        rows = page.locator("table tbody tr")
        expect(rows).to_have_count(3)
        tree.get_by_role("button", name="Old 0 / 4").click()
        expect(rows).to_have_count(4)


def test_the_dashboard_follows_a_running_process(tmp_path: Path, page: Page) -> None:
    """A profile run against an IMAP server that accepts and never answers runs until its 5 s
    timeout: the dashboard lists it while it runs (function, user, progress) and, following it
    on its own, shows it gone once it has ended."""
    import socket

    data = tmp_path / "data"
    mk_ok(data, "call", "CreateUser", "userName=boss", "privileges=admin,login",
          "password=Boss-pass-1")
    mk_ok(data, "call", "CreateUser", "userName=carol", "privileges=none")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel takes the connection; nobody ever answers
        properties = {"name": "stalled", "type": "imap", "userName": "carol",
                      "host": "127.0.0.1", "port": silent.getsockname()[1], "security": "none",
                      "login": "carol", "password": "x", "timeout": 5}
        made = json.loads(mk_ok(data, "call", "CreateProfile",
                                "properties=" + json.dumps(properties)).stdout)
        with console_server(data) as base:
            log_in(page, base, "boss", "Boss-pass-1")
            page.get_by_role("button", name="Administration").click()
            started = page.evaluate("""async (id) => {
                const r = await fetch('/mcapi/function/invoke', {method: 'POST', headers: {
                  'Content-Type': 'application/json',
                  'X-Fs-SessionId': sessionStorage.getItem('mk.sid')},
                  body: JSON.stringify({name: 'RunProfile', args: {id}})});
                return (await r.json()).result.data.statusCode; }""", made["id"])
            assert started == "running"
            page.get_by_role("button", name="Refresh").click()
            processes = page.get_by_role("region", name="Running processes")
            expect(processes).to_contain_text("RunProfile")
            expect(processes).to_contain_text("boss")
            expect(processes.get_by_role("progressbar", name="RunProfile")).to_have_count(1)
            expect(processes).to_contain_text("None.", timeout=30_000)  # followed to its end


def test_remote_images_only_when_asked(tmp_path: Path, page: Page) -> None:
    """A message with an https image: no request for it until "Show remote images"; "Always
    show remote images from this sender" keeps that choice for the sender's next message (in
    this browser), not for another sender's. Requests are watched where they would leave."""
    data = tmp_path / "data"
    user(data, "alice", "Alice-pass-1")
    img = '<p>pic</p><img src="https://images.example.net/{}.png">'
    archive_mail(data, tmp_path, "alice", [
        eml("News 1", "News <news@shop.example>", "t", html=img.format("one"),
            date="Mon, 02 Mar 2026 10:00:00 +0000"),
        eml("News 2", "News <news@shop.example>", "t", html=img.format("two"),
            date="Tue, 03 Mar 2026 10:00:00 +0000"),
        eml("Other", "Other <x@other.example>", "t", html=img.format("other"),
            date="Wed, 04 Mar 2026 10:00:00 +0000")])
    asked: list[str] = []
    page.route("https://images.example.net/**", lambda route: (asked.append(route.request.url),
                                                                 route.abort()))
    with console_server(data) as base:
        log_in(page, base, "alice", "Alice-pass-1")
        rows = page.locator("table tbody tr")
        expect(rows).to_have_count(3)
        rows.nth(2).click()  # News 1
        expect(page.locator("section.reader h2")).to_have_text("News 1")
        page.frame_locator('iframe[title="Message body"]').get_by_text("pic").wait_for()
        assert asked == []
        with page.expect_event("requestfailed", lambda r: "one.png" in r.url):
            page.get_by_role("button", name="Always show remote images from this sender").click()
        with page.expect_event("requestfailed", lambda r: "two.png" in r.url):
            rows.nth(1).click()  # News 2: the same sender, shown with its images at once
        rows.nth(0).click()  # Other: not trusted
        expect(page.locator("section.reader h2")).to_have_text("Other")
        page.frame_locator('iframe[title="Message body"]').get_by_text("pic").wait_for()
        assert not any("other.png" in u for u in asked), asked
        page.get_by_role("button", name="Full view").click()
        expect(page.get_by_role("navigation", name="Folders")).to_be_hidden()


def test_users_page(tmp_path: Path, page: Page) -> None:
    """An administrator makes an account (privileges ticked), gives it a role and a new
    password, and deletes another, from the users page; the accounts are as the page said."""
    data = tmp_path / "data"
    mk_ok(data, "call", "CreateUser", "userName=boss", "privileges=admin,login",
          "password=Boss-pass-1")
    mk_ok(data, "call", "CreateUser", "userName=leaving", "privileges=login",
          "password=Leaving-pass-1")
    with console_server(data) as base:
        log_in(page, base, "boss", "Boss-pass-1")
        page.get_by_role("button", name="Administration").click()
        page.get_by_role("button", name="Users").click()
        users = page.get_by_role("region", name="Users")
        expect(users).to_contain_text("leaving")
        page.get_by_label("New user").fill("dana")
        page.get_by_label("Password", exact=True).fill("Dana-pass-1")
        users.get_by_role("checkbox", name="archive").check()
        page.get_by_role("button", name="Create").click()
        expect(users).to_contain_text("dana")
        page.get_by_label("Role dana").select_option("operator")
        users.get_by_role("row", name="dana").get_by_role("button", name="Apply").click()
        expect(page.get_by_role("status")).to_have_text("Saved.")
        page.get_by_label("New password for dana").fill("Dana-pass-2")
        users.get_by_role("row", name="dana").get_by_role("button", name="Set").click()
        expect(page.get_by_role("status")).to_have_text("Saved.")
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name="Delete leaving").click()
        expect(users).not_to_contain_text("leaving")
    info = json.loads(mk_ok(data, "call", "GetUserInfo", "userName=dana").stdout)
    assert info["role"] == "operator" and set(info["privileges"]) == {"login", "archive"}
    assert "leaving" not in mk_ok(data, "user", "list").stdout
    with console_server(data) as base:
        log_in(page, base, "dana", "Dana-pass-2")


def test_settings_page(tmp_path: Path, page: Page) -> None:
    """An administrator changes a setting and returns another to its default from the settings
    page; a value out of range is refused with the reason and changes nothing."""
    data = tmp_path / "data"
    mk_ok(data, "call", "CreateUser", "userName=boss", "privileges=admin,login",
          "password=Boss-pass-1")
    mk_ok(data, "settings", "set", "smtp.max_errors", "30")
    with console_server(data) as base:
        log_in(page, base, "boss", "Boss-pass-1")
        page.get_by_role("button", name="Administration").click()
        page.get_by_role("button", name="Settings").click()
        page.get_by_label("smtp.max_recipients", exact=True).fill("500")
        page.get_by_role("button", name="Save smtp.max_recipients").click()
        status = page.get_by_role("status")
        expect(status).to_contain_text("smtp.max_recipients: Saved.")
        page.get_by_label("server.max_body", exact=True).fill("5")
        page.get_by_role("button", name="Save server.max_body").click()
        expect(status).to_contain_text("server.max_body:")
        expect(status).not_to_contain_text("Saved")
        page.get_by_role("button", name="Reset smtp.max_errors").click()
        expect(status).to_contain_text("smtp.max_errors: Saved.")
        expect(page.get_by_label("smtp.max_errors", exact=True)).to_have_value("20")
    values = {c["key"]: c["value"] for c in json.loads(mk_ok(data, "call", "GetSettings").stdout)}
    assert (values["smtp.max_recipients"], values["server.max_body"],
            values["smtp.max_errors"]) == (500, 1 << 20, 20)


def test_a_result_says_which_attachment_the_words_were_found_in(tmp_path: Path,
                                                                 page: Page) -> None:
    """A word found only inside an attachment's text (a real PDF, a Word file): the result
    names that attachment under the subject."""
    from tests.core.test_documents import KINDS
    data = tmp_path / "data"
    user(data, "alice", "Alice-pass-1")
    archive_mail(data, tmp_path, "alice", [
        eml("Quarterly papers", "Billing <billing@vendor.example>", "Both attached.",
            attachment=[("invoice.pdf", "application/pdf", KINDS["invoice.pdf"]),
                        ("contract.docx", "application/octet-stream",
                         KINDS["contract.docx"])]),
        eml("Nothing attached", "Carol <carol@example.org>", "no 4711 here, only 4712")])
    with console_server(data) as base:
        log_in(page, base, "alice", "Alice-pass-1")
        search = page.get_by_role("searchbox", name="Search")
        search.fill("4711")
        search.press("Enter")
        rows = page.locator("table tbody tr")
        expect(rows).to_have_count(2)
        papers = rows.filter(has_text="Quarterly papers")
        expect(papers.locator(".matched")).to_have_text("Found in invoice.pdf")
        expect(rows.filter(has_text="Nothing attached").locator(".matched")).to_have_count(0)
        search.fill("attachment:4712")
        search.press("Enter")
        expect(rows).to_have_count(1)
        expect(rows.nth(0).locator(".matched")).to_have_text("Found in contract.docx")
