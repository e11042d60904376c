"""The console's administration pages for archiving profiles, jobs, a user's details and the
stores, in a real browser against a real `mailkeep serve`: what the page does is what the
server then holds, and a role that may only look sees everything and can change nothing."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.console.browser import browser, console_server, log_in, user
from tests.console.test_console import archive_mail, eml
from tests.helpers import mk, mk_ok


@pytest.fixture
def page() -> Iterator[Page]:
    with browser() as chromium:
        context = chromium.new_context(ignore_https_errors=True)
        yield context.new_page()
        context.close()


def boss(data: Path) -> None:
    mk_ok(data, "call", "CreateUser", "userName=boss", "privileges=admin,login",
          "password=Boss-pass-1")


def called(data: Path, name: str, *args: str) -> Any:
    return json.loads(mk_ok(data, "call", name, *args).stdout)


def open_admin(page: Page, base: str, tab: str, name: str = "boss",
               password: str = "Boss-pass-1") -> None:
    log_in(page, base, name, password)
    page.get_by_role("button", name="Administration").click()
    page.get_by_role("region", name="Service status").wait_for()  # the dashboard comes first
    if tab != "Dashboard":
        page.get_by_role("button", name=tab, exact=True).click()


def test_profile_made_from_its_schema_runs_with_its_report(tmp_path: Path, page: Page) -> None:
    """An administrator makes a directory profile with the form of its type (the fields come
    from the server's schema), runs it and sees what it archived, opens its report, changes a
    property; an IMAP profile's password is written and never shown again; a property the
    server refuses is refused with the reason and makes no profile."""
    data = tmp_path / "data"
    boss(data)
    user(data, "alice", "Alice-pass-1")
    drop = tmp_path / "drop"
    drop.mkdir()
    for i in range(3):  # written a while ago: a file being written now is left for later
        (drop / f"{i}.eml").write_bytes(eml(f"Dropped {i}", "a@example.org", "x"))
        os.utime(drop / f"{i}.eml", (time.time() - 600, time.time() - 600))
    (drop / "notes.txt").write_text("not mail")
    with console_server(data) as base:
        open_admin(page, base, "Profiles")
        page.get_by_role("button", name="New profile").click()
        form = page.get_by_role("region", name="New profile")
        form.get_by_label("Type").select_option("directory")
        expect(form.get_by_label("host")).to_have_count(0)  # not a field of this type
        form.get_by_label("name", exact=True).fill("Drop folder")
        form.get_by_label("userName", exact=True).fill("alice")
        form.get_by_label("path", exact=True).fill(str(tmp_path / "missing"))
        form.get_by_role("button", name="Create").click()
        expect(form.get_by_role("status")).to_contain_text("Invalid profile properties")
        assert called(data, "GetProfiles") == []
        form.get_by_label("path", exact=True).fill(str(drop))
        expect(form.get_by_label("recursive")).to_be_checked()  # the schema's default
        form.get_by_role("button", name="Create").click()
        profiles = page.get_by_role("region", name="Archiving profiles")
        expect(profiles).to_contain_text("Drop folder")
        profiles.get_by_role("button", name="Run Drop folder").click()
        expect(profiles.get_by_role("status")).to_have_text(
            "succeeded: 3 archived, 0 already archived, 0 failed", timeout=30_000)
        expect(profiles.get_by_role("row", name="Drop folder")).to_contain_text("succeeded (")
        recent = page.get_by_role("region", name="Recent runs (7 days)")
        expect(recent).to_contain_text("Drop folder")
        recent.get_by_role("button", name="Report").first.click()
        report = page.get_by_role("region", name=re.compile(r"^Report: Drop folder"))
        expect(report).to_contain_text("Drop folder: succeeded")
        expect(report.get_by_role("heading")).to_be_focused()
        profiles.get_by_role("button", name="Edit Drop folder").click()
        edit = page.get_by_role("region", name="Edit profile Drop folder")
        expect(edit.get_by_label("Type")).to_be_disabled()
        edit.get_by_label("pattern").fill("*.txt")
        edit.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status").first).to_have_text("Saved.")

        page.get_by_role("button", name="New profile").click()
        form = page.get_by_role("region", name="New profile")
        form.get_by_label("Type").select_option("imap")
        form.get_by_label("name", exact=True).fill("Mailbox")
        form.get_by_label("userName", exact=True).fill("alice")
        form.get_by_label("host").fill("imap.example.org")
        form.get_by_label("login", exact=True).fill("alice")
        expect(form.get_by_label("password", exact=True)).to_have_attribute("type", "password")
        form.get_by_label("password", exact=True).fill("Imap-secret-9")
        form.get_by_label("folders", exact=True).fill("INBOX, Sent")
        form.get_by_role("button", name="Create").click()
        expect(profiles.get_by_role("row", name="Mailbox")).to_contain_text(
            "alice@imap.example.org")
        profiles.get_by_role("button", name="Edit Mailbox").click()
        edit = page.get_by_role("region", name="Edit profile Mailbox")
        expect(edit.get_by_label("password", exact=True)).to_have_value("")
        assert "Imap-secret-9" not in page.content()
    shown = {p["name"]: p for p in called(data, "GetProfiles")}
    assert shown["Drop folder"]["properties"]["pattern"] == "*.txt"
    assert shown["Drop folder"]["properties"]["path"] == str(drop)
    assert shown["Mailbox"]["properties"]["folders"] == ["INBOX", "Sent"]
    assert shown["Mailbox"]["properties"]["hasPassword"] is True
    found = called(data, "SearchArchive", "query=user:alice Dropped")
    assert found["total"] == 3


def test_job_schedule_editor(tmp_path: Path, page: Page) -> None:
    """An administrator makes a weekly job with the schedule editor (only the fields a weekly
    schedule takes are shown), changes it to the last day of each month, runs it now and sees
    its result, and disables it; the server holds each of these as the page showed."""
    data = tmp_path / "data"
    boss(data)
    with console_server(data) as base:
        open_admin(page, base, "Jobs")
        page.get_by_role("button", name="New job").click()
        form = page.get_by_role("region", name="New job")
        form.get_by_label("Name", exact=True).fill("Verify twice a week")
        form.get_by_label("Action").fill("VerifyStores")
        form.get_by_label("Time zone").select_option("Europe/Berlin")
        form.get_by_label("Repeat").select_option("weekly")
        expect(form.get_by_label("Date")).to_be_hidden()
        expect(form.get_by_label("Every (minutes)")).to_be_hidden()
        form.get_by_label("Time", exact=True).fill("03:15")
        form.get_by_role("checkbox", name="Monday").uncheck()
        form.get_by_role("checkbox", name="Tuesday").check()
        form.get_by_role("checkbox", name="Friday").check()
        form.get_by_role("button", name="Create").click()
        jobs = page.get_by_role("region", name="Jobs")
        row = jobs.get_by_role("row", name="Verify twice a week")
        expect(row).to_contain_text("Weekly Tuesday, Friday 03:15 (Europe/Berlin)")
        [job] = called(data, "GetJobs")
        assert job["schedule"]["type"] == "weekly"
        assert job["schedule"]["dayOfWeek"] == "Tuesday,Friday"
        assert job["schedule"]["time"] == "03:15:00" and job["timeZoneId"] == "Europe/Berlin"
        assert job["nextRun"] is not None

        jobs.get_by_role("button", name="Edit Verify twice a week").click()
        form = page.get_by_role("region", name="Schedule of Verify twice a week")
        expect(form.get_by_label("Action")).to_be_disabled()
        form.get_by_label("Repeat").select_option("monthly")
        form.get_by_label("Day of the month").select_option("Last")
        form.get_by_role("button", name="Save").click()
        expect(row).to_contain_text("Monthly Last day 03:15")
        jobs.get_by_role("button", name="Run now Verify twice a week").click()
        expect(page.get_by_role("region", name="Recent runs (7 days)")).to_contain_text(
            "succeeded", timeout=30_000)
        enabled = page.get_by_role("checkbox", name="Enabled Verify twice a week")
        enabled.focus()
        page.keyboard.press("Space")  # by keyboard: the page is redrawn, the focus stays
        expect(page.get_by_role("status").first).to_have_text("Saved.")
        expect(enabled).not_to_be_checked()
        expect(enabled).to_be_focused()
    [job] = called(data, "GetJobs")
    assert job["schedule"]["type"] == "monthly" and job["schedule"]["dayOfMonth"] == "Last"
    assert job["enabled"] is False and job["nextRun"] is None
    assert job["lastRun"]["result"] == "succeeded"


def test_folder_rights_given_and_taken_in_the_page(tmp_path: Path, page: Page) -> None:
    """An administrator gives bob read access to alice's Inbox in bob's details (and his email
    address); bob then finds alice's message; once the right is removed he no longer can, the
    server deciding, not the page."""
    data = tmp_path / "data"
    boss(data)
    user(data, "alice", "Alice-pass-1")
    user(data, "bob", "Bob-pass-1")
    archive_mail(data, tmp_path, "alice", [eml("Shared plan", "c@example.org", "plan")])
    with console_server(data) as base:
        open_admin(page, base, "Users")
        page.get_by_role("button", name="Edit bob").click()
        details = page.get_by_role("region", name="User bob")
        details.get_by_label("Email addresses").fill("bob@example.org, b.smith@example.org")
        details.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status").first).to_have_text("bob: Saved.")
        details.get_by_label("Folder", exact=True).fill("alice/Inbox")
        details.get_by_role("button", name="Grant").click()
        expect(details.get_by_role("table", name="Folder rights")).to_contain_text("alice/Inbox")
        info = called(data, "GetUserInfo", "userName=bob")
        assert info["emailAddresses"] == ["bob@example.org", "b.smith@example.org"]
        assert info["privilegesOnFolders"] == [{"folder": "alice/Inbox", "privileges": ["read"]}]

        bob = page.context.browser.new_context(ignore_https_errors=True).new_page()
        log_in(bob, base, "bob", "Bob-pass-1")
        expect(bob.get_by_role("row").filter(has_text="Shared plan")).to_have_count(1)

        details.get_by_role("button", name="Remove alice/Inbox").click()
        expect(details.get_by_role("table", name="Folder rights")).not_to_contain_text("alice")
        bob.get_by_role("searchbox", name="Search").fill("plan")
        bob.get_by_role("searchbox", name="Search").press("Enter")
        expect(bob.get_by_text("No messages match.")).to_be_visible()
        bob.context.close()
    assert called(data, "GetUserInfo", "userName=bob")["privilegesOnFolders"] == []


def test_stores_detached_attached_and_recovered(tmp_path: Path, page: Page) -> None:
    """On the dashboard an administrator makes a store, detaches it (asked first), attaches its
    directory again, makes it write-protected, and recovers the default store from its
    segments with live progress; an operator sees the same dashboard with every change
    unavailable."""
    data = tmp_path / "data"
    boss(data)
    mk_ok(data, "call", "CreateUser", "userName=oper", "privileges=login",
          "password=Oper-pass-1")
    mk_ok(data, "call", "SetUserRole", "userName=oper", "role=operator")
    archive_mail(data, tmp_path, "boss", [eml(f"m{i}", "a@example.org", "x") for i in range(5)])
    with console_server(data) as base:
        open_admin(page, base, "Dashboard")
        stores = page.get_by_role("region", name="Stores")
        page.get_by_label("New store").fill("Old mail")
        page.get_by_role("button", name="Create").click()
        expect(stores).to_contain_text("Old mail")
        path = next(s["databasePath"] for s in called(data, "GetStores")
                    if s["name"] == "Old mail")
        asked: list[str] = []
        page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        stores.get_by_role("button", name="Detach Old mail").click()
        expect(stores).not_to_contain_text("Old mail")
        assert asked and "Old mail" in asked[0]
        page.get_by_label("Name", exact=True).fill("Old mail again")
        page.get_by_label("Directory").fill(path)
        page.get_by_role("button", name="Attach", exact=True).click()
        expect(stores).to_contain_text("Old mail again")
        page.get_by_label("State of Old mail again").select_option("writeProtected")
        expect(page.get_by_label("State of Old mail again")).to_have_value("writeProtected")
        stores.get_by_role("button", name="Recover Default").click()
        expect(stores.get_by_role("status")).to_contain_text("Done: 5 messages, no problems",
                                                            timeout=30_000)
        by_name = {s["name"]: s for s in called(data, "GetStores")}
        assert by_name["Old mail again"]["requestedState"] == "writeProtected"
        assert "Old mail" not in by_name

        page.get_by_role("button", name="Archive").click()
        page.get_by_role("button", name="Log out").click()
        open_admin(page, base, "Dashboard", "oper", "Oper-pass-1")
        expect(stores).to_contain_text("Old mail again")
        expect(page.get_by_role("region", name="Service status")).to_contain_text("Version")
        expect(stores.get_by_role("button", name="Recover Default")).to_be_disabled()
        expect(page.get_by_label("State of Default")).to_be_disabled()
        expect(page.get_by_label("New store")).to_have_count(0)
        page.get_by_role("button", name="Jobs", exact=True).click()
        expect(page.get_by_role("region", name="Jobs")).to_be_visible()
        expect(page.get_by_role("button", name="New job")).to_have_count(0)
        page.get_by_role("button", name="Users", exact=True).click()
        expect(page.get_by_role("region", name="Users")).to_contain_text("boss")
        expect(page.get_by_label("Role boss")).to_be_disabled()
        expect(page.get_by_role("button", name="Apply the role to boss")).to_be_disabled()
        expect(page.get_by_label("New user")).to_have_count(0)
        page.get_by_role("button", name="Notification mail", exact=True).click()
        expect(page.get_by_role("button", name="Save")).to_be_disabled()
        expect(page.get_by_role("button", name="Send test mail")).to_be_disabled()


def test_notification_mail_in_each_shape(tmp_path: Path, page: Page) -> None:
    """The notification mail's page shows the fields of the way it is sent: an SMTP server
    with SMTP authentication (user and password), then a named connection made on the same
    page; the server holds each, and the passwords are never shown again."""
    data = tmp_path / "data"
    boss(data)
    with console_server(data) as base:
        open_admin(page, base, "Notification mail")
        page.get_by_label("Send").select_option("SMTP")
        expect(page.get_by_label("pop3ServerName")).to_have_count(0)
        page.get_by_label("serverName").fill("smtp.example.org")
        page.get_by_label("port", exact=True).fill("587")
        page.get_by_label("useStartTls").check()
        page.get_by_label("userName", exact=True).fill("notifier")
        page.get_by_label("password (unchanged if left empty)").fill("Smtp-secret-7")
        page.get_by_label("fromMailAddress").fill("mailkeep@example.org")
        page.get_by_label("toMailAddress").fill("admin@example.org")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status").first).to_have_text("Saved.")
        conf = called(data, "GetSmtpSettings")
        assert conf["authenticationType"] == "SMTP" and conf["userName"] == "notifier"
        assert conf["serverName"] == "smtp.example.org" and conf["port"] == 587

        made = page.get_by_role("form", name="New connection")
        made.get_by_label("Name", exact=True).fill("relay")
        made.get_by_label("Server").fill("relay.example.org")
        made.get_by_label("Port").fill("2525")
        made.get_by_label("Authentication").select_option("login")
        made.get_by_label("User name").fill("relay-user")
        made.get_by_label("Password").fill("Relay-secret-8")
        made.get_by_role("button", name="Create").click()
        connections = page.get_by_role("region", name="Named connections")
        expect(connections).to_contain_text("relay.example.org")
        page.get_by_label("Send").select_option("connection")
        expect(page.get_by_label("serverName")).to_have_count(0)
        page.get_by_label("connection", exact=True).select_option("relay")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status").first).to_have_text("Saved.")
        assert "Smtp-secret-7" not in page.content() and "Relay-secret-8" not in page.content()
    conf = called(data, "GetSmtpSettings")
    assert conf["connection"] == "relay" and "serverName" not in conf


def test_legal_hold_placed_and_lifted_in_the_page(tmp_path: Path, page: Page) -> None:
    """An administrator places the archive under legal hold with a reason (refused without
    one); a message then cannot be deleted, the page saying who set the hold, when and why;
    lifted with a reason, deletion works again."""
    data = tmp_path / "data"
    boss(data)
    archive_mail(data, tmp_path, "boss", [eml("Evidence", "a@example.org", "x")])
    with console_server(data) as base:
        open_admin(page, base, "Compliance")
        hold = page.get_by_role("region", name="Legal hold")
        expect(hold).to_contain_text("There is no legal hold.")
        hold.get_by_role("button", name="Place the archive under legal hold").click()
        expect(hold.get_by_label("Reason")).to_be_focused()  # required: the browser asks
        hold.get_by_label("Reason").fill("Litigation 2026-17")
        hold.get_by_role("button", name="Place the archive under legal hold").click()
        expect(hold).to_contain_text("The archive is under legal hold")
        expect(hold).to_contain_text("Litigation 2026-17")
        expect(hold).to_contain_text("mcapi:boss")
        refused = mk(data, "call", "DeleteMessage", "id=1:1", "reason=tidy")
        assert refused.exit_code != 0 and "Litigation 2026-17" in refused.output
        hold.get_by_label("Reason").fill("Case closed")
        hold.get_by_role("button", name="Lift the legal hold").click()
        expect(hold).to_contain_text("There is no legal hold.")
    mk_ok(data, "call", "DeleteMessage", "id=1:1", "reason=tidy")


def test_retention_access_and_evidence_in_the_page(tmp_path: Path, page: Page) -> None:
    """The compliance page as an administrator uses it: a retention policy made in the form
    keeps a message from deletion (the lookup says until when and by which policy); archive
    access changed with a reason and the password; four-eyes deletion asked by one
    administrator and approved by another; the tamper evidence shows the archive's public key
    and each store's latest signed head."""
    data = tmp_path / "data"
    boss(data)
    mk_ok(data, "call", "CreateUser", "userName=second", "privileges=admin,login",
          "password=Second-pass-1")
    archive_mail(data, tmp_path, "boss", [eml("Invoice 17", "bank@example.org", "pay"),
                                          eml("Chat", "friend@example.org", "hi")])
    key = mk_ok(data, "heads", "key").output.strip()
    with console_server(data) as base:
        open_admin(page, base, "Compliance")
        page.get_by_role("region", name="Retention policies").get_by_label(
            "Four-eyes deletion", exact=False).check()
        expect(page.get_by_role("status").first).to_have_text("Saved.")
        assert called(data, "GetRetentionPolicies")["fourEyes"] is True
        card = page.get_by_role("region", name="Retention policies")
        card.get_by_role("button", name="New policy").click()
        form = card.get_by_role("form", name="New policy")
        form.get_by_label("Name").fill("Invoices")
        form.get_by_label("Minimum: Value").fill("10")
        form.get_by_label("Scope").fill("subject:invoice")
        form.get_by_role("button", name="Save").click()
        card = page.get_by_role("region", name="Retention policies")
        expect(card.get_by_role("cell", name="Invoices", exact=True)).to_be_visible()
        got = called(data, "GetRetentionPolicies")["policies"]
        assert got == [{"name": "Invoices", "enabled": True,
                        "minimum": {"value": 10, "unit": "years"}, "maximum": None,
                        "referenceDate": "archived", "scope": "subject:invoice",
                        "deleteAutomatically": False}]
        invoice = next(m["id"] for m in called(data, "GetMessages", "folder=boss/Inbox")
                       if m["subject"] == "Invoice 17")
        card.get_by_label("One message's retention").fill(invoice)
        card.get_by_role("button", name="Show").click()
        expect(card).to_contain_text("by Invoices")
        refused = mk(data, "call", "RequestMessageDeletion", f"id={invoice}", "reason=tidy")
        assert refused.exit_code != 0 and "Invoices" in refused.output

        access = page.get_by_role("region", name="Archive access")
        access.get_by_label("Administrators may read other users' messages").check()
        access.get_by_label("Reason").fill("Investigation 4")
        access.get_by_label("Your password").fill("wrong")
        access.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status").first).to_contain_text("password")
        assert called(data, "GetComplianceConfiguration")["archiveAccess"][
            "administrators"] is False
        access = page.get_by_role("region", name="Archive access")
        access.get_by_label("Administrators may read other users' messages").check()
        access.get_by_label("Reason").fill("Investigation 4")
        access.get_by_label("Your password").fill("Boss-pass-1")
        access.get_by_role("button", name="Save").click()
        expect(page.get_by_role("region", name="Archive access")).to_contain_text(
            "Investigation 4")
        assert called(data, "GetComplianceConfiguration")["archiveAccess"][
            "administrators"] is True

        evidence = page.get_by_role("region", name="Tamper evidence")
        expect(evidence).to_contain_text(key)

        requests = page.get_by_role("region", name="Deletion requests")
        chat = next(m["id"] for m in called(data, "GetMessages", "folder=boss/Inbox")
                    if m["subject"] == "Chat")
        expect(page.get_by_role("region", name="Retention policies").get_by_label(
            "Four-eyes deletion", exact=False)).to_be_checked()
        requests.get_by_label("Message id").fill(chat)
        requests.get_by_label("Reason").fill("wrong list")
        requests.get_by_role("button", name="Ask for a deletion").click()
        requests = page.get_by_role("region", name="Deletion requests")
        expect(requests.get_by_role("button", name=f"Approve {chat}")).to_be_disabled()
        browser = page.context.browser
        assert browser is not None
        other = browser.new_context(ignore_https_errors=True)  # the second administrator's
        second = other.new_page()
        open_admin(second, base, "Compliance", "second", "Second-pass-1")
        second.get_by_role("region", name="Deletion requests").get_by_role(
            "button", name=f"Approve {chat}").click()
        expect(second.get_by_role("region", name="Deletion requests")).to_contain_text(
            "approved (mcapi:second)")
        other.close()
    assert chat not in {m["id"] for m in called(data, "GetMessages", "folder=boss/Inbox")}


def test_the_attachments_of_stored_mail_are_read_from_the_stores_card(tmp_path: Path,
                                                                      page: Page) -> None:
    """Mail archived while the attachments' text was off: the store's "Read attachments"
    button reads it, with its progress, and a search then finds the words inside."""
    from tests.core.test_documents import KINDS
    data = tmp_path / "data"
    boss(data)
    user(data, "alice", "Alice-pass-1")
    mk_ok(data, "settings", "set", "archive.attachment_text", "false")
    archive_mail(data, tmp_path, "alice", [
        eml("Signed contract", "Legal <legal@example.org>", "Attached.",
            attachment=[("contract.docx", "application/octet-stream", KINDS["contract.docx"])])])
    mk_ok(data, "settings", "set", "archive.attachment_text", "true")
    with console_server(data) as base:
        open_admin(page, base, "Dashboard")
        stores = page.get_by_role("region", name="Stores")
        stores.get_by_role("button", name="Read attachments Default").click()
        expect(stores.get_by_role("status")).to_contain_text(
            "Done: 1 messages read, 1 with text inside attachments", timeout=60_000)
    hits = called(data, "SearchArchive", "query=attachment:4712")
    assert [m["subject"] for m in hits["messages"]] == ["Signed contract"]
