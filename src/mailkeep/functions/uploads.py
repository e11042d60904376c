"""Importing mail by upload (the console's drop zone; a script can do the same): `.eml`,
`.mbox` / `.mbox.gz`, Outlook `.msg` and `.pst`, or a zip of them, into a folder of the caller's
own archive.

StartUpload names the file and its size and gets a signed link (web/console.py) good for five
minutes; the file is sent to it with PUT, written to `uploads/` in the data directory as it
arrives (never held in memory), and refused beyond the setting `console.max_upload`. Then the
server runs ImportUpload as a process (progress, cancel, audited) filing through the server's
one store writer like an archiving profile, and deletes the upload. A zip is read entry by
entry, within bounds (entries, total size, ratio), each entry under its base name only.
Whoever uploads needs the privilege archive or admin, as for journaling.
"""

from __future__ import annotations

import json
import queue
import re
import secrets
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

from mailkeep.core.admin.settings import Settings
from mailkeep.core.errors import Cancelled, Forbidden, InvalidArgument, NotFound
from mailkeep.core.fields import Field
from mailkeep.core.files import private_dir
from mailkeep.core.message import SourceProblem
from mailkeep.core.writer import Filed, Filing
from mailkeep.functions.call import Call
from mailkeep.functions.reading import EVERYONE, LINK_SECONDS, sign
from mailkeep.functions.registry import McRoute, function
from mailkeep.sources.detect import read_paths

ZIP_ENTRIES = 100_000
ZIP_RATIO = 200  # uncompressed / compressed, at most, per entry
UPLOAD_NAME = re.compile(r"[0-9a-f]{32}")
SUFFIXES = (".eml", ".msg.eml", ".mbox", ".mbox.gz", ".mbx", ".gz", ".zip", ".txt", ".msg",
            ".pst", ".ost")
MAX_PENDING = 200


def uploads_dir(data_dir: Path) -> Path:
    path = data_dir / "uploads"
    private_dir(path)
    return path


def _may_archive(call: Call) -> None:
    from mailkeep.core.admin.users import Users
    from mailkeep.functions.invoke import SYSTEM_VIAS

    if call.caller.via in SYSTEM_VIAS:
        return  # the machine's command line may
    account = Users(call.master).account(call.user)
    if account is None or not ({"admin", "archive"} & set(account.privileges)
                               or account.is_administrator):
        raise Forbidden(f"User {call.user} has neither the privilege archive nor admin: it "
                        "cannot import mail.")


def _folder(value: str) -> str:
    parts = [p for p in (value or "").replace("\\", "/").split("/") if p]
    if not parts or any(p in (".", "..") or len(p) > 200 for p in parts) or len(parts) > 20:
        raise InvalidArgument("folder must name a folder of your archive, such as Uploads or "
                              "Old/2019.")
    return "/".join(parts)


@function("StartUpload", "mailkeep extension: a link (good for five minutes, for the caller) "
          "to which the caller sends, with PUT, one file of mail (.eml, .mbox, .mbox.gz, .msg, "
          ".pst or a zip of them) of the size given, to be imported into a folder of its own "
          "archive; the answer to the PUT is the import process (its token, followed with "
          "/mcapi/function/status).",
          '{"url": str, "maxSize": int}',
          Field("fileName", "string", description="The file's name (its kind is read from it "
                "and from its first bytes)."),
          Field("size", "int", low=1, high=1 << 50, description="The file's size in bytes."),
          Field("folder", "string", required=False, default="Uploads",
                description="The folder of the caller's archive the mail goes into."),
          changes=False, roles=EVERYONE, mcapi=McRoute("archive/upload", "POST"))
def start_upload(call: Call) -> dict[str, Any]:
    _may_archive(call)
    limit = int(Settings(call.master).get("console.max_upload"))
    if call.arg("size") > limit:
        raise InvalidArgument(f"The file is larger than the {limit} bytes an upload may be "
                              "(setting console.max_upload).")
    name = Path(str(call.arg("fileName")).replace("\\", "/")).name[:200] or "upload"
    claims = {"u": call.user, "v": call.caller.via, "s": call.caller.session, "k": "upload",
              "n": name,
              "z": call.arg("size"), "f": _folder(call.arg("folder")),
              "e": int(time.time()) + LINK_SECONDS}
    return {"url": sign(claims), "maxSize": limit}


def new_upload(data_dir: Path, user: str, name: str, folder: str) -> tuple[str, Path]:
    """A place for an upload's bytes: its id and the file to write."""
    upload_id = secrets.token_hex(16)
    place = uploads_dir(data_dir) / upload_id
    place.mkdir(mode=0o700)
    (place / "upload.json").write_text(json.dumps({"user": user, "folder": folder,
                                                   "name": name}))
    return upload_id, place / ("file" + _suffix(name))


def _suffix(name: str) -> str:
    lower = name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return suffix
    return ""


def drop_upload(data_dir: Path, upload_id: str) -> None:
    if UPLOAD_NAME.fullmatch(upload_id):
        shutil.rmtree(uploads_dir(data_dir) / upload_id, ignore_errors=True)


@function("ImportUpload", "mailkeep extension: import an upload (StartUpload, then PUT) into "
          "the folder it was meant for, as a process; the upload is deleted afterwards.",
          '{"archived": int, "duplicates": int, "failed": int, "failures": [str]}',
          Field("uploadId", "string", description="The upload's id."),
          long_running=True, roles=EVERYONE)
def import_upload(call: Call) -> dict[str, Any]:
    _may_archive(call)
    upload_id = str(call.arg("uploadId"))
    place = uploads_dir(call.data_dir) / upload_id
    meta_path = place / "upload.json"
    if not UPLOAD_NAME.fullmatch(upload_id) or not meta_path.is_file():
        raise NotFound("There is no such upload.")
    meta = json.loads(meta_path.read_text())
    if meta["user"].lower() != call.user.lower() and call.caller.via != "cli":
        raise NotFound("There is no such upload.")
    try:
        files = [f for f in place.iterdir() if f.name.startswith("file")]
        if not files:
            raise NotFound("The upload has no file (it was not sent whole).")
        source = files[0]
        if zipfile.is_zipfile(source):
            source = _unzip(source, place / "unzipped",
                            int(Settings(call.master).get("console.max_upload")))
        return _file_all(call, source, meta["user"], meta["folder"])
    finally:
        drop_upload(call.data_dir, upload_id)


def _unzip(path: Path, into: Path, limit: int) -> Path:
    """The zip's files, each under its base name, within bounds; the directory holding them."""
    into.mkdir(mode=0o700)
    total = 0
    with zipfile.ZipFile(path) as zipped:
        entries = [i for i in zipped.infolist() if not i.is_dir()]
        if len(entries) > ZIP_ENTRIES:
            raise InvalidArgument(f"The zip holds more than {ZIP_ENTRIES} files.")
        for n, info in enumerate(entries):
            if info.file_size > ZIP_RATIO * max(info.compress_size, 1024):
                raise InvalidArgument(f"{info.filename[:100]!r} expands {ZIP_RATIO} times "
                                      "over: not read (a zip bomb?).")
            total += info.file_size
            if total > limit:
                raise InvalidArgument("The zip holds more than an upload may be "
                                      "(setting console.max_upload).")
            base = Path(info.filename.replace("\\", "/")).name or "entry"
            target = into / f"{n:06d}-{base[:150]}"
            with zipped.open(info) as src, target.open("xb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return into


def _file_all(call: Call, source: Path, owner: str, base: str) -> dict[str, Any]:
    writer = call.services.writer
    results: queue.Queue[Filed | BaseException] = queue.Queue()
    counts = {"archived": 0, "duplicates": 0, "failed": 0}
    failures: list[str] = []
    pending = 0

    def settle(block: bool) -> None:
        nonlocal pending
        while pending:
            try:
                outcome = results.get(block=block)
            except queue.Empty:
                return
            pending -= 1
            if isinstance(outcome, BaseException):
                counts["failed"] += 1
                if len(failures) < 100:
                    failures.append(getattr(outcome, "message", None) or str(outcome))
            elif outcome.duplicate:
                counts["duplicates"] += 1
            else:
                counts["archived"] += 1
            block = False

    reader = read_paths([source])
    try:
        for item in reader:
            call.ctx.check_cancelled()
            if isinstance(item, SourceProblem):
                if not item.skipped:
                    counts["failed"] += 1
                    if len(failures) < 100:
                        failures.append(f"{Path(item.origin).name}: {item.reason}")
                continue
            folder = "/".join(p for p in (base, item.folder) if p)
            writer.submit(Filing([(owner, folder)], results.put, raw=item.data,
                                 stream=item.stream, size=item.size, flags=item.flags,
                                 internal_date=item.internal_date, order=results,
                                 source="upload"))
            pending += 1
            settle(block=False)
            while pending >= MAX_PENDING:
                settle(block=True)
            done = reader.bytes_done * 100 // max(reader.bytes_total, 1)
            call.ctx.progress(int(done), f"{counts['archived']} archived, "
                              f"{counts['duplicates']} already archived, "
                              f"{counts['failed']} failed")
    except Cancelled:
        raise
    finally:
        while pending:
            settle(block=True)
    call.note(**counts)
    return {**counts, "failures": failures}
