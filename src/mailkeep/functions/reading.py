"""Reading one's archive: search, folders, one message with its parts (mailkeep extensions; the
web console calls them through /mcapi/archive/..., scripts through the Administration API).

Who reads what: every account that may log in reads its own archive (the folders under its
user name) and the folders granted to it with the privilege `read` (SetUserPrivilegesOnFolder:
a grant on "bob" covers bob's whole archive, one on "bob/Invoices" that folder and those under
it). Administrators read every archive only while the compliance configuration's
archiveAccess.administrators is on; accounts with the privilege `auditor` while
archiveAccess.auditors is (each of their searches and reads is audited, whatever
auditing.off says). The command line of the machine (the owner of the data directory) reads
everything. The scope is added to the query the catalog runs, so a
search can never name a folder outside it, whatever the query says.

A message's body and its parts are fetched through short-lived signed links (web/console.py):
GetArchiveMessage names them, the console loads the body into a sandboxed frame from one,
downloads come from the others. A link is good for LINK_SECONDS, for the account it was made
for, and the access is checked again when it is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailkeep.core.admin.compliance import Compliance
from mailkeep.core.archive import Archive, parse_message_id
from mailkeep.core.errors import Forbidden, InvalidArgument, NotFound
from mailkeep.core.fields import Field
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.mime.view import view
from mailkeep.core.storage.catalog import full_name
from mailkeep.core.storage.query import compile_query
from mailkeep.functions.call import Call, Caller
from mailkeep.functions.invoke import SYSTEM_VIAS
from mailkeep.functions.registry import McRoute, function

EVERYONE = ("administrator", "developer", "operator", "user")  # console roles; user: no role
LINK_SECONDS = 300
PAGE_MAX = 200
_KEY = secrets.token_bytes(32)  # signs this process's links; a restart ends them


@dataclass(frozen=True)
class Scope:
    """The folders a caller may read: None is everything (the machine's command line)."""

    grants: tuple[tuple[str, str], ...] | None  # (owner, path or "" for the whole archive)
    wide: str | None = None  # "administrator" or "auditor": every archive, by archiveAccess

    def allows(self, owner: str, folder: str) -> bool:
        if self.grants is None:
            return True
        folder = folder.strip("/")
        return any(owner.lower() == o.lower()
                   and (not p or folder.lower() == p.lower()
                        or folder.lower().startswith(p.lower() + "/"))
                   for o, p in self.grants)

    def sql(self) -> tuple[str, list[object]] | None:
        """The condition on the folders table (owner, path) that keeps a search inside the
        scope (Query.folders); None: every folder."""
        if self.grants is None:
            return None
        if not self.grants:
            return "1 = 0", []
        conds: list[str] = []
        params: list[object] = []
        for owner, path in self.grants:
            if path:
                like = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                # (lower(): without regard to case in SQLite and PostgreSQL alike)
                conds.append("(lower(owner) = lower(?) AND (lower(path) = lower(?) OR "
                             "lower(path) LIKE lower(?) ESCAPE '\\'))")
                params.extend([owner, path, like + "/%"])
            else:
                conds.append("lower(owner) = lower(?)")
                params.append(owner)
        return "(" + " OR ".join(conds) + ")", params


def scope_of(master: MasterDB, user: str, via: str) -> Scope:
    if via in SYSTEM_VIAS:
        return Scope(None)
    from mailkeep.core.admin.users import Users

    users = Users(master)
    account = users.account(user)
    if account is None:
        return Scope(())
    access = Compliance(master).get()["archiveAccess"]
    if "auditor" in account.privileges and access.get("auditors"):
        return Scope(None, "auditor")
    if account.is_administrator and access.get("administrators"):
        return Scope(None, "administrator")
    grants = [(account.user_name, "")]
    for folder, flags in users.rows.folder_privileges(account.id):
        if "read" in flags:
            owner, _, path = folder.strip("/").partition("/")
            grants.append((owner, path))
    return Scope(tuple(grants))


def _scope(call: Call) -> Scope:
    return scope_of(call.master, call.user, call.caller.via)


def _audit_read(call: Call, scope: Scope, event: str, /, **details: Any) -> None:
    """A read of other people's mail: recorded unless auditing.off names the event; one that
    only archiveAccess allows (an auditor's, an administrator's), always."""
    if scope.wide is not None:
        details["access"] = scope.wide
        call.master.audit.write(call.caller.actor, event, **details)
    else:
        Compliance(call.master).audit(call.caller.actor, event, **details)


def _date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _open(call: Call, message_id: str) -> tuple[Any, Any, int, Any]:
    """(store record, store, number, catalog entry) of a message the caller may read; the
    same NotFound whether it does not exist or is outside the caller's scope."""
    try:
        _rec, store, number = call.archive.message(message_id)
    except (NotFound, InvalidArgument):
        raise NotFound(f"Message {message_id[:40]} does not exist.") from None
    hit = store.catalog.entry(number)
    if hit is None or not _scope(call).allows(hit.owner, hit.folder):
        raise NotFound(f"Message {message_id[:40]} does not exist.")
    return _rec, store, number, hit


SEARCH_SHAPE = ('{"total": int, "totalExact": bool, "offset": int, "messages": [{"id": str, '
                '"date": str, "from": str, "to": str, "subject": str, "folder": str, "size": int, '
                '"hasAttachment": bool, "matchedAttachments": [str]}], '
                '"unavailable": {str: str}}')


@function("SearchArchive", "mailkeep extension: search the archives the caller may read "
          "(its own, and folders granted to it), newest first, with the command line's "
          "syntax: words, \"phrases\", from: to: subject: body: attachment: folder: user: "
          "has:attachment after: before: on:, OR, -word.", SEARCH_SHAPE,
          Field("query", "string", required=False, default="", description="The search; "
                "empty: every message."),
          Field("offset", "int", required=False, default=0, low=0, high=10_000_000,
                description="Results to skip."),
          Field("limit", "int", required=False, default=50, low=1, high=PAGE_MAX,
                description="Results to return."),
          Field("sort", "string", required=False, default="date",
                choices=("date", "from", "subject", "size"), description="What orders the "
                "results (then the date, newest first)."),
          Field("ascending", "bool", required=False, default=False,
                description="Oldest, A to Z, smallest first (default: the other way)."),
          Field("exactTotal", "bool", required=False, default=False,
                description="Count every match. Otherwise a store with more than 10,000 "
                "(or whose count would take long) gives an estimate, to two figures, and "
                "totalExact is false."),
          changes=False, roles=EVERYONE, mcapi=McRoute("archive/search", "POST"))
def search_archive(call: Call) -> dict[str, Any]:
    scope = _scope(call)
    if scope.wide is not None:  # every archive, by archiveAccess: each search on the record
        _audit_read(call, scope, "MessageSearch", query=call.arg("query") or "")
    query = scoped_query(call.arg("query") or "", scope)
    res = call.archive.search_compiled(query, call.arg("limit"), call.arg("offset"),
                                       call.arg("sort"), bool(call.arg("ascending")),
                                       bool(call.arg("exactTotal")))
    return {"total": res.total, "totalExact": res.exact, "offset": call.arg("offset"),
            "messages": [{"id": h.message_id, "date": _date(h.hit.date),
                          "from": h.hit.sender, "to": h.hit.recipients,
                          "subject": h.hit.subject,
                          "folder": full_name(h.hit.owner, h.hit.folder), "size": h.hit.size,
                          "hasAttachment": h.hit.has_attachment,
                          "matchedAttachments": h.matched} for h in res.hits],
            "unavailable": {name: getattr(why, "message", str(why))
                            for name, why in res.unavailable.items()}}


@function("GetArchiveFolders", "mailkeep extension: the folders of the archives the caller "
          "may read, with their message counts.",
          '[{"folder": str, "messageCount": int, "size": int}]',
          changes=False, roles=EVERYONE, mcapi=McRoute("archive/folders", "POST"))
def get_archive_folders(call: Call) -> list[dict[str, Any]]:
    scope = _scope(call)
    out = []
    for owner, path, messages, size in call.archive.folders():
        if scope.allows(owner, path):
            out.append({"folder": full_name(owner, path.strip("/")), "messageCount": messages,
                        "size": size})
    return out


MESSAGE_SHAPE = ('{"id": str, "folder": str, "date": str, "size": int, "flags": [str], '
                 '"headers": [[str, str]], "text": str, "hasHtml": bool, "bodyUrl": str|null, '
                 '"sourceUrl": str, "remoteImages": bool, "parts": [{"index": int, "name": str, '
                 '"contentType": str, "size": int, "attachment": bool, "url": str}], '
                 '"warnings": [str]}')


@function("GetArchiveMessage", "mailkeep extension: one message the caller may read: its "
          "headers, text, and links (good for five minutes, for the caller) to its HTML body "
          "made safe, its parts and its original bytes.", MESSAGE_SHAPE,
          Field("id", "string", description="<storeId>:<number>, as SearchArchive gives it."),
          Field("remoteImages", "bool", required=False, default=False,
                description="Let the HTML body load images from https addresses."),
          changes=False, roles=EVERYONE, mcapi=McRoute("archive/message", "POST"))
def get_archive_message(call: Call) -> dict[str, Any]:
    message_id = call.arg("id").strip()
    _rec, store, number, hit = _open(call, message_id)
    if hit.owner.lower() != call.user.lower():  # someone else's mail, read: on the record
        _audit_read(call, _scope(call), "MessageRetrieveContent", id=message_id,
                    owner=hit.owner, folder=full_name(hit.owner, hit.folder))
    flags, _ = store.catalog.entry_flags(number)
    shown = view(store.read(number))
    remote = bool(call.arg("remoteImages"))
    return {"id": message_id, "folder": full_name(hit.owner, hit.folder), "date": _date(hit.date),
            "size": hit.size, "flags": list(flags),
            "headers": [[n, v] for n, v in shown.headers], "text": shown.text,
            "hasHtml": shown.html is not None,
            "bodyUrl": link(call.caller, message_id, "body", remote=remote)
            if shown.html is not None else None,
            "sourceUrl": link(call.caller, message_id, "source"),
            "remoteImages": remote,
            "parts": [{"index": p.index, "name": p.name, "contentType": p.content_type,
                       "size": p.size, "attachment": p.attachment,
                       "url": link(call.caller, message_id, "part", p.index)}
                      for p in shown.parts],
            "warnings": shown.warnings + store.catalog.entry_warnings(number)}


EXPORT_IDS = 500  # messages an export may name one by one (a search names any number)


@function("ExportArchive", "mailkeep extension: a link (good for five minutes, for the caller) "
          "that downloads messages the caller may read, byte for byte: those named by ids, or "
          "all results of a search, as one mbox file or a zip of .eml files, streamed.",
          '{"url": str, "count": int, "fileName": str}',
          Field("query", "string", required=False, default="", description="The search "
                "whose results to export (SearchArchive's syntax), when ids is empty."),
          Field("ids", "string", required=False, default="", description="Comma-separated "
                f"message ids (at most {EXPORT_IDS}); empty: the results of query."),
          Field("format", "string", required=False, default="mbox", choices=("mbox", "zip"),
                description="mbox (mboxrd) or zip (one .eml per message)."),
          changes=False, roles=EVERYONE, mcapi=McRoute("archive/export", "POST"))
def export_archive(call: Call) -> dict[str, Any]:
    ids = [i.strip() for i in (call.arg("ids") or "").split(",") if i.strip()]
    if len(ids) > EXPORT_IDS:
        raise InvalidArgument(f"At most {EXPORT_IDS} ids may be named; export a search for "
                              "more.")
    for message_id in ids:
        _open(call, message_id)  # each must exist and be the caller's to read
    query = "" if ids else (call.arg("query") or "")
    if ids:
        count = len(ids)
    else:
        compiled = scoped_query(query, _scope(call))
        count = call.archive.search_compiled(compiled, 0, 0, exact=True).total
    fmt = call.arg("format")
    # every export is on the record (what it takes may be other people's mail)
    _audit_read(call, _scope(call), "MessageExport", query=query, ids=ids, count=count,
                format=fmt)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    name = f"mailkeep-{stamp}.{'mbox' if fmt == 'mbox' else 'zip'}"
    url = sign({"u": call.user, "v": call.caller.via, "s": call.caller.session, "k": "export",
                 "q": query, "ids": ids, "f": fmt, "n": name, "j": secrets.token_hex(8),
                 "e": int(time.time()) + LINK_SECONDS})
    return {"url": url, "count": count, "fileName": name}


def scoped_query(query: str, scope: Scope) -> Any:
    """The compiled search, kept inside the scope."""
    compiled = compile_query(query)
    restriction = scope.sql()
    if restriction is not None:
        compiled.folders.append(restriction)
    return compiled


# -- links -----------------------------------------------------------------------------------
def link(caller: Caller, message_id: str, kind: str, index: int = 0,
         remote: bool = False) -> str:
    """A path under /console/ that serves one thing of one message to the caller for a
    while (and no longer than the console session it was made in)."""
    return sign({"u": caller.user, "v": caller.via, "s": caller.session, "m": message_id,
                  "k": kind, "i": index, "r": remote, "e": int(time.time()) + LINK_SECONDS})


def sign(claims: dict[str, Any]) -> str:
    """The path under /console/ of a link with these claims, signed with this process's key
    (read_link checks it)."""
    kind = claims["k"]
    body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
    sig = base64.urlsafe_b64encode(hmac.new(_KEY, body, hashlib.sha256).digest()[:18])
    return f"/console/{kind}/{body.decode().rstrip('=')}.{sig.decode()}"


def read_link(token: str, kind: str) -> dict[str, Any]:
    """The claims of a link made here, still valid, for `kind`; Forbidden otherwise."""
    body, _, sig = token.partition(".")
    try:
        raw = body.encode("ascii") + b"=" * (-len(body) % 4)
        want = base64.urlsafe_b64encode(hmac.new(_KEY, raw, hashlib.sha256).digest()[:18])
        if not sig or not hmac.compare_digest(sig.encode("ascii"), want):
            raise ValueError
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(raw))
    except (ValueError, UnicodeError, TypeError):
        raise Forbidden("This link is not valid: open the message again.") from None
    if claims.get("k") != kind or int(claims.get("e", 0)) < time.time():
        raise Forbidden("This link has expired: open the message again.")
    return claims


def still_allowed(master: MasterDB, claims: dict[str, Any]) -> None:
    """A link works only while its account may log in, and, made in a console session, while
    that session is open (a logout, a new password or a login privilege taken away ends it)."""
    from mailkeep.core.admin.sessions import Sessions
    from mailkeep.core.admin.users import Users

    via = str(claims.get("v", ""))
    if via in SYSTEM_VIAS:
        return
    refusal = Users(master).login_refusal(str(claims.get("u", "")), "web" if via == "mcapi"
                                          else "api")
    if refusal is not None:
        raise Forbidden("This link's account may no longer log in.")
    session = str(claims.get("s") or "")
    if via == "mcapi" and not (session and Sessions(master).alive(session)):
        raise Forbidden("The session this link was made in has ended: log in again.")


def linked_message(archive: Archive, master: MasterDB, claims: dict[str, Any]
                   ) -> tuple[bytes, Any]:
    """The raw bytes and catalog entry a link names, if its account may still read them."""
    still_allowed(master, claims)
    parse_message_id(claims["m"])
    try:
        _rec, store, number = archive.message(claims["m"])
    except (NotFound, InvalidArgument):
        raise NotFound("The message does not exist (any more).") from None
    hit = store.catalog.entry(number)
    if hit is None or not scope_of(master, claims["u"], claims["v"]).allows(hit.owner,
                                                                           hit.folder):
        raise NotFound("The message does not exist (any more).")
    return store.read(number), hit


MIN_NEW_PASSWORD = 8
WRONG_CURRENT_MAX = 5  # wrong current passwords before the account's sessions end
_WRONG_CURRENT: dict[str, int] = {}


@function("ChangeMyPassword", "mailkeep extension: the caller changes its own password, giving "
          "the current one (the console's first login with the initial password asks for this). "
          "The new one has at least 8 characters and differs from the current one; every "
          "console session of the account ends (the console logs in again with the new one).",
          "null",
          Field("currentPassword", "string", description="The password now.", secret=True),
          Field("newPassword", "string", description="The new password.", secret=True),
          roles=EVERYONE, mcapi=McRoute("account/password", "POST"))
def change_my_password(call: Call) -> None:
    from mailkeep.core.admin.sessions import Sessions
    from mailkeep.core.admin.users import Users

    users = Users(call.master, hasher=call.services.hasher)
    account = users.account(call.user)
    if account is None or call.caller.via in SYSTEM_VIAS:
        raise InvalidArgument("Only an account changes its own password this way (the "
                              "machine's command line uses `mailkeep user password`).")
    if account.authentication != "integrated":
        raise InvalidArgument("This account's password is its directory's: change it there.")
    current, new = call.arg("currentPassword"), call.arg("newPassword")
    key = account.user_name.lower()
    if not users.verify_password(account.user_name, current):
        # Whoever holds a session must not guess the password through it: after a few wrong
        # ones the account's console sessions end (and logins are throttled as ever).
        _WRONG_CURRENT[key] = _WRONG_CURRENT.get(key, 0) + 1
        if _WRONG_CURRENT[key] >= WRONG_CURRENT_MAX:
            _WRONG_CURRENT.pop(key, None)
            Sessions(call.master).end_user(account.user_name)
            call.master.audit.write(call.caller.actor, "session.ended",
                                    reason="wrong current passwords")
            raise InvalidArgument("The current password is not right: the sessions of this "
                                  "account have ended after too many wrong ones.")
        raise InvalidArgument("The current password is not right.")
    _WRONG_CURRENT.pop(key, None)
    if len(new) < MIN_NEW_PASSWORD:
        raise InvalidArgument(f"The new password needs at least {MIN_NEW_PASSWORD} characters.")
    if new == current:
        raise InvalidArgument("The new password must differ from the current one.")
    users.set_password(account.user_name, new)
    Sessions(call.master).end_user(account.user_name)
