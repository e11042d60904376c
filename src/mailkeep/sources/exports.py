"""The exports people have, read as they lay them out (detect.py hands them over):

- Gmail (Google Takeout): an mbox whose messages carry `X-Gmail-Labels`. Each label is a
  folder the message is filed in (stored once, filed in each; "a/b" labels nest); the
  pseudo-labels "Opened" and "Unread" are its read state, not folders; a message with no other
  label is filed in "All Mail". `X-GM-THRID` stays in the message as it came.
- Thunderbird: a directory of mbox files (no suffix) with `.msf` index files beside them and
  `X.sbd/` directories holding the subfolders of X. A message whose `X-Mozilla-Status` has the
  expunged bit (0x0008: deleted, the folder not yet compacted) is skipped; read, replied and
  marked become the flags seen, answered and flagged. The other files of a profile (indexes,
  filters, settings) are not mail and are skipped.
- Apple Mail: an exported `X.mbox` bundle (a directory holding the file `mbox`, and
  `table_of_contents`), nested bundles as subfolders, and `.emlx` files (the message's byte
  count on the first line, the message, then a property list whose `flags` say read,
  answered, flagged). A `.partial.emlx` holds the message without the attachments Apple Mail
  kept apart in files of its own: it is archived as it is (those files are not put back).
"""

from __future__ import annotations

import os
import plistlib
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator
from email.header import decode_header, make_header
from email.parser import HeaderParser
from email.policy import compat32
from pathlib import Path

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources.eml import SPOOL_THRESHOLD, join_folder, open_regular, os_reason

Item = RawMessage | SourceProblem
HEAD_BYTES = 64 << 10  # where the headers that matter here are looked for
MAX_LABELS = 200
LABEL_MAX = 200  # characters of one level of a label
READ_STATE = {"opened": True, "unread": False}  # Gmail's pseudo-labels
ALL_MAIL = "All Mail"
# X-Mozilla-Status bits (nsMsgMessageFlags)
MOZ_READ, MOZ_REPLIED, MOZ_MARKED, MOZ_EXPUNGED = 0x0001, 0x0002, 0x0004, 0x0008
# Apple Mail's emlx flags
APPLE_READ, APPLE_DELETED, APPLE_ANSWERED, APPLE_FLAGGED = 1 << 0, 1 << 1, 1 << 2, 1 << 4
THUNDERBIRD_MARKER = ".msf"
SUBFOLDERS = ".sbd"
APPLE_BUNDLE = ".mbox"


def _headers(head: bytes) -> dict[str, str]:
    """The headers this module reads, unfolded (the first of each)."""
    end = head.find(b"\r\n\r\n")
    end = head.find(b"\n\n") if end < 0 else end
    block = head if end < 0 else head[:end]
    # raw UTF-8 in a header (as some exports write labels) read as UTF-8, not as surrogates
    msg = HeaderParser(policy=compat32).parsestr(block.decode("utf-8", "replace"))
    out: dict[str, str] = {}
    for name in ("X-Gmail-Labels", "X-Mozilla-Status"):
        value = msg.get(name)
        if value is not None:
            out[name.lower()] = re.sub(r"\r?\n[ \t]+", " ", str(value)).strip()
    return out


def gmail_labels(value: str) -> list[str]:
    """The labels of an X-Gmail-Labels value: comma-separated, a label with a comma quoted,
    non-ASCII ones RFC 2047-encoded (as Takeout writes them)."""
    try:
        value = str(make_header(decode_header(value)))
    except (ValueError, LookupError):
        pass  # kept as written
    labels: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            labels.append("".join(current))
            current = []
        else:
            current.append(ch)
    labels.append("".join(current))
    out: list[str] = []
    seen: set[str] = set()
    for label in labels:
        parts = []
        for p in label.split("/"):
            p = "".join(c for c in p if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp",
                                                                        "Cs")).strip()
            if p in (".", ".."):
                p = p.replace(".", "_")  # a folder name, not a way up
            if p:
                parts.append(p[:LABEL_MAX])
        label = "/".join(parts)
        if label and label.casefold() not in seen:  # Inbox and INBOX are one label
            seen.add(label.casefold())
            out.append(label)
    return out


def _moz_status(value: str | None) -> int | None:
    if value is None or not re.fullmatch(r"[0-9A-Fa-f]{1,8}", value):
        return None
    return int(value, 16)


def from_mbox(items: Iterator[Item], folder: str) -> Iterator[Item]:
    """Messages of an mbox (in `folder`), as Gmail and Thunderbird meant them: filed under
    each Gmail label, with Thunderbird's flags, expunged ones skipped."""
    for item in items:
        if not isinstance(item, RawMessage):
            yield item
            continue
        seen = _headers(item.head(HEAD_BYTES))
        status = _moz_status(seen.get("x-mozilla-status"))
        flags = set(item.flags)
        if status is not None:
            if status & MOZ_EXPUNGED:
                item.close()
                yield SourceProblem(item.origin, "deleted in Thunderbird (the folder was not "
                                    "compacted since): not archived", skipped=True)
                continue
            for bit, flag in ((MOZ_READ, "seen"), (MOZ_REPLIED, "answered"),
                              (MOZ_MARKED, "flagged")):
                if status & bit:
                    flags.add(flag)
        if "x-gmail-labels" not in seen:
            item.flags = frozenset(flags)
            yield item
            continue
        labels = gmail_labels(seen["x-gmail-labels"])
        state = [READ_STATE[lab.lower()] for lab in labels if lab.lower() in READ_STATE]
        if state and state[-1]:
            flags.add("seen")
        if any(lab.lower() == "starred" for lab in labels):
            flags.add("flagged")
        folders = [lab for lab in labels if lab.lower() not in READ_STATE] or [ALL_MAIL]
        if len(folders) > MAX_LABELS:
            yield SourceProblem(item.origin, f"{len(folders)} labels: filed under the first "
                                f"{MAX_LABELS} only", skipped=True)
            folders = folders[:MAX_LABELS]
        base = folder.rpartition("/")[0] if "/" in folder else ""  # beside the mbox's own
        item.flags = frozenset(flags)
        if item.stream is not None and len(folders) > 1:
            # a message too large for memory can be read once: filed under its first label
            yield SourceProblem(item.origin, f"a large message with {len(folders)} labels is "
                                f"filed under {folders[0]!r} only", skipped=True)
            folders = folders[:1]
        for name in folders:
            if item.data is not None:
                yield RawMessage(join_folder(base, name), item.origin, data=item.data,
                                 flags=item.flags, internal_date=item.internal_date,
                                 position=item.position)
            else:
                item.folder = join_folder(base, name)
                yield item


# -- Thunderbird ---------------------------------------------------------------------------------
def is_thunderbird(directory: Path, names: list[str]) -> bool:
    """A Thunderbird mail directory: index files (.msf) beside its mbox files."""
    return any(n.endswith(THUNDERBIRD_MARKER) for n in names)


ORDINARY = (".eml", ".emlx", ".gz", ".mbox", ".mbx")  # read as anywhere else


def thunderbird_entry(entry: os.DirEntry[str], folder: str,
                      read_mbox_file: Callable[[Path, str], Iterator[Item]],
                      read_dir: Callable[[Path, str], Iterator[Item]],
                      other: Callable[[os.DirEntry[str], str], Iterator[Item]]
                      ) -> Iterator[Item]:
    """One entry of a Thunderbird mail directory: an mbox file is the folder of its name,
    X.sbd/ holds the subfolders of X; what is not mail is skipped."""
    name = entry.name
    if entry.is_dir(follow_symlinks=False):
        sub = name[: -len(SUBFOLDERS)] if name.endswith(SUBFOLDERS) else name
        yield from read_dir(Path(entry.path), join_folder(folder, sub))
        return
    if not entry.is_file(follow_symlinks=False):
        yield SourceProblem(entry.path, "not a regular file or directory", skipped=True)
        return
    if name.lower().endswith(ORDINARY):
        yield from other(entry, folder)  # a message or mbox file saved there: as anywhere
        return
    try:
        with open_regular(Path(entry.path)) as fh:
            first = fh.read(5)
    except OSError as exc:
        yield SourceProblem(entry.path, os_reason(exc))
        return
    if first == b"From ":
        yield from read_mbox_file(Path(entry.path), join_folder(folder, name))
    elif first and not name.endswith(THUNDERBIRD_MARKER):
        yield SourceProblem(entry.path, "not a mailbox (a file of the Thunderbird profile)",
                            skipped=True)
    # an index (.msf), or an empty mailbox: nothing to archive


# -- Apple Mail -----------------------------------------------------------------------------------
def is_apple_bundle(path: Path) -> bool:
    return path.name.endswith(APPLE_BUNDLE) and (
        (path / "mbox").is_file() or (path / "table_of_contents").exists()
        or any(path.glob("*/Data")) or (path / "Messages").is_dir())


def read_apple_bundle(path: Path, folder: str,
                      read_mbox_file: Callable[[Path, str], Iterator[Item]],
                      named: bool = True) -> Iterator[Item]:
    """An Apple Mail mailbox: its `mbox` file, its .emlx messages wherever below it, its
    nested bundles as subfolders; nothing else of it is mail. `named`: it is the folder of
    its name below `folder` (else, named directly for an import, it is `folder` itself)."""
    here = join_folder(folder, path.name[: -len(APPLE_BUNDLE)] or path.name) if named \
        else folder
    for root, dirs, files in os.walk(path, followlinks=False):
        rel = Path(root)
        nested = [d for d in dirs if d.endswith(APPLE_BUNDLE)]
        dirs[:] = sorted(d for d in dirs if not d.endswith(APPLE_BUNDLE))
        for d in sorted(nested):
            if (rel / d).is_symlink():
                yield SourceProblem(str(rel / d), "symlinked directory not followed",
                                    skipped=True)
                continue
            yield from read_apple_bundle(rel / d, here, read_mbox_file)
        for name in sorted(files):
            full = rel / name
            if name == "mbox" and rel == path:
                yield from read_mbox_file(full, here)
            elif name.endswith(".emlx"):
                yield read_emlx(full, here)


def read_emlx(path: Path, folder: str) -> Item:
    """An Apple Mail .emlx file: the byte count, the message, a property list of flags."""
    origin = str(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return SourceProblem(origin, "not a regular file", skipped=True)
        with open_regular(path) as fh:
            first = fh.readline(32)
            count = int(first.strip()) if first.strip().isdigit() else -1
            if count <= 0:
                return SourceProblem(origin, "not an emlx file (no byte count on its first "
                                     "line)")
            if count > SPOOL_THRESHOLD * 64:
                return SourceProblem(origin, f"an emlx message of {count} bytes is larger "
                                     "than mailkeep reads from one")
            data = fh.read(count)
            tail = fh.read(1 << 20)
    except OSError as exc:
        return SourceProblem(origin, os_reason(exc))
    if len(data) < count:
        return SourceProblem(origin, f"the emlx file is cut short ({len(data)} of {count} "
                             "bytes)")
    flags: set[str] = set()
    try:
        props = plistlib.loads(tail) if tail.strip() else {}
        bits = props.get("flags", 0) if isinstance(props, dict) else 0
    except Exception:  # noqa: BLE001  (a damaged property list: no flags, the message kept)
        bits = 0
    if isinstance(bits, int):
        for bit, flag in ((APPLE_READ, "seen"), (APPLE_ANSWERED, "answered"),
                          (APPLE_FLAGGED, "flagged")):
            if bits & bit:
                flags.add(flag)
    return RawMessage(folder, origin, data=data, flags=frozenset(flags))
