"""Folder functions: the archive's folder tree and the messages in a folder.

A folder path as the Administration API writes it is "<user>/<path>" with "/" between levels:
"alice/Inbox/Lists" is the folder "Inbox/Lists" of alice's archive, and "alice" alone is the
root of alice's archive. The tree is the union over all readable stores; folders that hold no
messages of their own but have subfolders (e.g. "alice/Archive" of "alice/Archive/2020") are
part of it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailkeep.core.archive import Archive
from mailkeep.core.errors import Conflict, InvalidArgument, NotFound
from mailkeep.core.fields import Field
from mailkeep.core.retention import Retention
from mailkeep.core.storage.catalog import full_name
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function

FOLDER_SHAPE = ('[{"folder": str, "name": str, "messageCount": int, "size": int, '
                '"hasChildren": bool}]')
STATISTICS_SHAPE = ('[{"folder": str, "messageCount": int, "size": int, '
                    '"totalMessageCount": int, "totalSize": int}]')
MESSAGE_SHAPE = ('[{"id": "<storeId>:<number>", "date": "YYYY-MM-DDTHH:MM:SSZ", "from": str, '
                 '"to": str, "subject": str, "size": int, "hasAttachment": bool, '
                 '"flags": [str]}]')


@dataclass
class Node:
    path: str  # "user" or "user/a/b"
    messages: int = 0
    size: int = 0
    children: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def split_folder(folder: str) -> tuple[str, str]:
    """"alice/Inbox/Sub" -> ("alice", "Inbox/Sub"); "alice" -> ("alice", "")."""
    owner, _, path = folder.strip("/").partition("/")
    return owner, path


def folder_tree(archive: Archive) -> dict[str, Node]:
    """Every folder by its full path, intermediate folders included, with its own counts."""
    nodes: dict[str, Node] = {}
    for owner, path, messages, size in archive.folders():
        full = full_name(owner, path.strip("/"))
        node = nodes.setdefault(full, Node(full))
        node.messages += messages
        node.size += size
        child = full
        while "/" in child:
            parent = child.rsplit("/", 1)[0]
            nodes.setdefault(parent, Node(parent)).children.add(child)
            child = parent
    return nodes


def _normalise(folder: str | None) -> str:
    return "/".join(part for part in (folder or "").split("/") if part)


def _lookup(nodes: dict[str, Node], folder: str) -> Node:
    node = nodes.get(folder)
    if node is None:
        raise NotFound(f"Folder {folder!r} does not exist (folder paths are "
                       "<user>/<folder>/<subfolder>, see GetChildFolders).")
    return node


def _item(node: Node) -> dict[str, Any]:
    return {"folder": node.path, "name": node.name, "messageCount": node.messages,
            "size": node.size, "hasChildren": bool(node.children)}


@function("GetChildFolders", "The folders below a folder, across all readable stores. folder "
          "is <user>/<path> with '/' between levels; empty or null means the top, whose "
          "children are the users' archives (one per user). maxLevels is how many levels "
          "below the folder to list (null: 1, the direct children only). messageCount and "
          "size (bytes) count the messages directly in each folder, not in its subfolders.",
          FOLDER_SHAPE,
          Field("folder", "string", True, "The parent folder, e.g. alice/Inbox; empty: the top."),
          Field("maxLevels", "number", True, "Levels to descend (1 or more; default 1)."),
          changes=False)
def get_child_folders(call: Call) -> list[dict[str, Any]]:
    levels = call.arg("maxLevels")
    if levels is None:
        levels = 1
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise InvalidArgument(f"Invalid value for API argument maxLevels: {levels} is not a "
                              "whole number of 1 or more.")
    nodes = folder_tree(call.archive)
    folder = _normalise(call.arg("folder"))
    if folder:
        start = sorted(_lookup(nodes, folder).children)
    else:
        start = sorted(p for p in nodes if "/" not in p)
    out: list[dict[str, Any]] = []

    def walk(paths: list[str], depth: int) -> None:
        for path in paths:
            node = nodes[path]
            out.append(_item(node))
            if depth < levels:
                walk(sorted(node.children), depth + 1)

    walk(start, 1)
    return out


@function("GetFolderStatistics", "Every folder of every user's archive (intermediate folders "
          "and each archive's root included), sorted by path: messageCount and size (bytes) "
          "of the messages directly in it, totalMessageCount and totalSize with its "
          "subfolders. A message kept in two stores counts in both.", STATISTICS_SHAPE,
          changes=False)
def get_folder_statistics(call: Call) -> list[dict[str, Any]]:
    nodes = folder_tree(call.archive)
    totals: dict[str, tuple[int, int]] = {}

    def total(path: str) -> tuple[int, int]:
        if path not in totals:
            node = nodes[path]
            n, s = node.messages, node.size
            for child in node.children:
                cn, cs = total(child)
                n, s = n + cn, s + cs
            totals[path] = (n, s)
        return totals[path]

    out = []
    for path in sorted(nodes):
        node = nodes[path]
        n, s = total(path)
        out.append({"folder": path, "messageCount": node.messages, "size": node.size,
                    "totalMessageCount": n, "totalSize": s})
    return out


def iso_utc(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@function("GetMessages", "The messages directly in a folder (not in its subfolders), oldest "
          "first, across all readable stores. folder is <user>/<path>, e.g. alice/Inbox; the "
          "user name alone is the root of that user's archive. id is <storeId>:<number> as "
          "DeleteMessage takes it; date is the message's date in UTC; size is in bytes; flags "
          "are seen, answered, flagged, draft, ... An unknown folder fails.", MESSAGE_SHAPE,
          Field("folder", "string", description="The folder, e.g. alice/Inbox."),
          changes=False)
def get_messages(call: Call) -> list[dict[str, Any]]:
    folder = _normalise(call.arg("folder"))
    if not folder:
        raise InvalidArgument("API argument folder must name a folder, e.g. alice/Inbox.")
    owner, path = split_folder(folder)
    found = False
    rows: list[tuple[int, int, int, dict[str, Any]]] = []
    for rec, store in call.archive.readable_stores():
        catalog = store.catalog
        fid = catalog.find_folder(owner, path)
        if fid is None:
            continue
        found = True
        for number in catalog.folder_numbers(fid):
            hit = catalog.entry(number)
            if hit is None:
                continue
            flags, _internal = catalog.entry_flags(number)
            rows.append((hit.date, rec.id, number, {
                "id": f"{rec.id}:{number}", "date": iso_utc(hit.date), "from": hit.sender,
                "to": hit.recipients, "subject": hit.subject, "size": hit.size,
                "hasAttachment": hit.has_attachment, "flags": flags}))
    if not found:
        _lookup(folder_tree(call.archive), folder)  # an intermediate folder is empty, not unknown
    rows.sort(key=lambda r: r[:3])
    return [r[3] for r in rows]


def _folder_arg(call: Call, name: str) -> tuple[str, str]:
    folder = _normalise(call.arg(name))
    if not folder:
        raise InvalidArgument(f"API argument {name} must name a folder, e.g. alice/Inbox.")
    return split_folder(folder)


@function("DeleteMessage", "Delete one message for good. id is <storeId>:<number> as "
          "GetMessages lists it; reason (required, not empty) is written to the audit log "
          "with the message's folder, subject, sender, date and size. The message's bytes "
          "leave the store's segments at the next CompactStore (a message also filed in "
          "other folders keeps those). Fails on a write-protected or disabled store.", "null",
          Field("id", "string", description="The message, <storeId>:<number>."),
          Field("reason", "string", description="Why it is deleted (kept in the audit log)."))
def delete_message(call: Call) -> None:
    if Retention(call.master).four_eyes():
        raise Conflict("Four-eyes deletion is on (SetRetentionPolicies fourEyes): ask with "
                       "RequestMessageDeletion; a second administrator approves it.")
    hit = call.archive.delete_message(str(call.arg("id")), str(call.arg("reason")))
    call.note(folder=full_name(hit.owner, hit.folder), subject=hit.subject, sender=hit.sender,
              date=hit.date, size=hit.size)


@function("MoveFolder", "Move a folder with its subfolders and messages to a new place, in "
          "every store that holds part of it; message ids (<storeId>:<number>) stay the same. "
          "Folders are <user>/<path>: alice/Old -> alice/Archive/Old renames within alice's "
          "archive, alice/Old -> bob/Old moves it into bob's. The new place must not exist "
          "yet (in any store) and must not lie inside the folder. Every store is checked "
          "first, disabled ones included: if one that holds part of the folder is "
          "write-protected, disabled, busy or cannot be read, nothing moves.", "null",
          Field("fromFolder", "string", description="The folder to move, e.g. alice/Old."),
          Field("toFolder", "string", description="Its new full path, e.g. alice/Archive/Old."))
def move_folder(call: Call) -> None:
    owner, path = _folder_arg(call, "fromFolder")
    to_owner, to_path = _folder_arg(call, "toFolder")
    call.note(stores=call.archive.move_folder(owner, path, to_owner, to_path))


@function("DeleteEmptyFolders", "Remove the folders that hold no messages and have no "
          "subfolders with messages, below folder (<user>/<path>; null or empty: in every "
          "user's archive). Folders in write-protected stores are left and named in the log; "
          "disabled stores are not looked at.", '{"deleted": [str]}',
          Field("folder", "string", True, "Where to look, e.g. alice/Archive; null: everywhere."),
          long_running=True)
def delete_empty_folders(call: Call) -> dict[str, list[str]]:
    folder = _normalise(call.arg("folder"))
    owner, path = split_folder(folder) if folder else (None, "")
    call.ctx.progress(0, "Looking for empty folders")
    removed, skipped = call.archive.drop_empty_folders(owner, path)
    remaining = folder_tree(call.archive)
    deleted = sorted(p for p in set(removed) if p not in remaining)
    for line in skipped:
        call.ctx.log(f"Skipped {line}")
    for p in deleted:
        call.ctx.log(f"Deleted empty folder {p}")
    call.ctx.log(f"{len(deleted)} empty folders deleted")
    call.ctx.progress(100)
    return {"deleted": deleted}
