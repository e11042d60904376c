"""The web console: static files (web/static/, plain ES modules and CSS, no build step) at `/`,
and what a message's links serve (functions/reading.py makes them): its HTML body made safe,
its parts and its original bytes.

Every response here carries a strict policy of its own. The console's pages: scripts only from
the server (no inline script, no eval), nothing framed but its own message bodies, no referrer,
`nosniff`, never framed by another site. A message body (archived HTML, written by whoever sent
the mail) is served sanitized (core/mime/view.safe_html) as its own document under
`sandbox` (no script, an origin of its own) with `default-src 'none'`: images only from the
message itself (`data:`), and from https only when the reader asked for remote images. Parts
and the original are downloads (`attachment`, `application/octet-stream`): nothing of a mail
is ever rendered in the console's origin. The page holds its session in memory and sends it as
X-Fs-SessionId: no cookie, so another site has nothing to ride on.
"""

from __future__ import annotations

import gzip
import io
import re
import time
import zipfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from mailkeep.core.archive import Archive
from mailkeep.core.errors import Forbidden, InvalidArgument, MailkeepError, NotFound
from mailkeep.core.export import mbox_pieces
from mailkeep.core.keys import KeyRing
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.mime.view import part_bytes, safe_html, view
from mailkeep.functions.call import Caller
from mailkeep.functions.reading import (
    Scope,
    linked_message,
    read_link,
    scope_of,
    scoped_query,
    still_allowed,
)
from mailkeep.functions.uploads import drop_upload, new_upload
from mailkeep.web import mcapi
from mailkeep.web.admin_api import ApiState
from mailkeep.web.envelope import user_agent

STATIC = resources.files("mailkeep.web") / "static"
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}\.(js|css|svg|png|ico|html)")
_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
          "svg": "image/svg+xml", "png": "image/png", "ico": "image/x-icon",
          "html": "text/html; charset=utf-8"}

PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: "
               "blob:; connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action "
               "'none'; frame-ancestors 'none'")
COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
          "Cross-Origin-Opener-Policy": "same-origin",
          "Cross-Origin-Resource-Policy": "same-origin"}
BODY_STYLE = ("body{font:15px/1.45 system-ui,sans-serif;margin:12px;color:#111;background:#fff;"
              "overflow-wrap:anywhere}img{max-width:100%;height:auto}table{max-width:100%}"
              "pre{white-space:pre-wrap}")


def _body_policy(remote: bool) -> str:
    images = "data: https:" if remote else "data:"
    return (f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; base-uri 'none';"
            " form-action 'none'; frame-ancestors 'self'; sandbox allow-popups "
            "allow-popups-to-escape-sandbox")


def _plain(status: int, text: str) -> Response:
    return Response(text, status, {**COMMON, "Cache-Control": "no-store",
                                   "Content-Security-Policy": "default-src 'none'"},
                    media_type="text/plain; charset=utf-8")


def _download(data: bytes, name: str) -> Response:
    ascii_name = re.sub(r'[^A-Za-z0-9._ -]', "_", name)[:100] or "download"
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name[:200])}"
    return Response(data, 200, {**COMMON, "Cache-Control": "no-store",
                                "Content-Disposition": disposition,
                                "Content-Security-Policy": "default-src 'none'; sandbox"},
                    media_type="application/octet-stream")


UPLOAD_IDLE_SECONDS = 60.0  # an upload that sends nothing for this long is dropped
RENDERS = 4  # message bodies, parts and sources prepared at once (threads of their own)
EXPORTS = 4  # exports streaming at once, in all
EXPORTS_PER_USER = 2


class Console:
    def __init__(self, data_dir: Path, master: MasterDB, keys: KeyRing,
                 state: ApiState | None = None) -> None:
        self.data_dir = data_dir
        self.master = master
        self.keys = keys
        self.state = state
        # Reading and sanitizing a message takes a thread: these never take the threads the
        # rest of the server answers with, however many views are asked for at once.
        self.renders = anyio.CapacityLimiter(RENDERS)
        self.exporting: dict[str, int] = {}  # user -> exports streaming
        self.used: dict[str, float] = {}  # export links used (one use each) -> when they expire
        self._packed: dict[str, tuple[bytes, bytes]] = {}  # static file -> (bytes, gzipped)

    async def upload(self, request: Request) -> Response:
        """The bytes of a StartUpload link, written to disk as they come; then ImportUpload
        runs as the uploader, as a process: the answer is its state (the console API's
        envelope, as function/invoke answers)."""
        try:
            claims = read_link(request.path_params["token"], "upload")
            await anyio.to_thread.run_sync(still_allowed, self.master, claims)
        except Forbidden as exc:
            return mcapi.error(3001, exc.message)
        if self.state is None:
            return mcapi.error(5000, "Uploads need the server.")
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) != int(claims["z"]):
            return mcapi.error(1002, f"Send the file with a Content-Length of {claims['z']} "
                               "bytes, the size given to StartUpload.")
        upload_id, target = await anyio.to_thread.run_sync(
            new_upload, self.data_dir, str(claims["u"]), str(claims["n"]), str(claims["f"]))
        size = int(claims["z"])
        written = 0
        try:
            with target.open("xb") as out:
                chunks = request.stream().__aiter__()
                while True:
                    with anyio.fail_after(UPLOAD_IDLE_SECONDS):
                        try:
                            chunk = await chunks.__anext__()
                        except StopAsyncIteration:
                            break
                    written += len(chunk)
                    if written > size:
                        raise ValueError("more bytes than announced")
                    await anyio.to_thread.run_sync(out.write, chunk)
            if written != size:
                raise ValueError("fewer bytes than announced")
        except (TimeoutError, ValueError, OSError, ClientDisconnect) as exc:
            await anyio.to_thread.run_sync(drop_upload, self.data_dir, upload_id)
            return mcapi.error(1002, f"The upload did not arrive whole ({exc}).")
        caller = Caller(str(claims["u"]), str(claims["v"]),
                        request.client.host if request.client else "",
                        agent=user_agent(request.headers))
        invoker = self.state.invoker
        try:
            fn = invoker.admit("ImportUpload", caller)
            prepared = invoker.with_args(fn, caller, native={"uploadId": upload_id})
            snap = await invoker.start(prepared)
        except MailkeepError as exc:
            await anyio.to_thread.run_sync(drop_upload, self.data_dir, upload_id)
            return mcapi.failed(exc)
        # The import is a process: its state now (with its token while it runs, followed with
        # /mcapi/function/status, its progress in percent of the upload read).
        return mcapi.success(mcapi.snapshot(snap))

    async def page(self, request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if not _NAME.fullmatch(name):
            return _plain(404, "Not found.")
        item = STATIC / name
        if not item.is_file():
            return _plain(404, "Not found.")
        data = item.read_bytes()
        headers = {**COMMON, "Content-Security-Policy": PAGE_POLICY,
                   "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", "") and len(data) > 1024:
            packed = self._packed.get(name)
            if packed is None or packed[0] != data:
                packed = self._packed[name] = (data, gzip.compress(data, 9, mtime=0))
            data = packed[1]
            headers["Content-Encoding"] = "gzip"
        return Response(data, 200, headers, media_type=_TYPES[name.rsplit(".", 1)[1]])

    async def linked(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        token = request.path_params["token"]
        if kind not in ("body", "source", "part", "export"):
            return _plain(404, "Not found.")
        try:
            claims = read_link(token, kind)
            if kind == "export":
                await anyio.to_thread.run_sync(still_allowed, self.master, claims)
                return self._export(claims)
            return await anyio.to_thread.run_sync(self._serve, kind, claims,
                                                  limiter=self.renders)
        except (Forbidden, NotFound) as exc:
            return _plain(403 if isinstance(exc, Forbidden) else 404, exc.message)
        except (MailkeepError, ValueError, TypeError, KeyError):
            return _plain(404, "Not found.")

    def _serve(self, kind: str, claims: dict[str, Any]) -> Response:
        with Archive(self.data_dir, self.master, self.keys) as archive:
            raw, hit = linked_message(archive, self.master, claims)
        if kind == "source":
            return _download(raw, f"message-{str(claims['m']).replace(':', '-')}.eml")
        if kind == "part":
            found = part_bytes(raw, int(str(claims["i"])))
            if found is None:
                return _plain(404, "The message has no such part.")
            part, data = found
            return _download(data, part.name or f"part-{part.index}")
        shown = view(raw)
        remote = bool(claims.get("r"))
        html = safe_html(raw, shown.html or "", remote, shown)
        doc = (f"<!doctype html><html><head><meta charset=\"utf-8\"><style>{BODY_STYLE}</style>"
               f"</head><body>{html}</body></html>")
        return Response(doc.encode(), 200, {**COMMON, "Cache-Control": "no-store",
                                            "Content-Security-Policy": _body_policy(remote)},
                        media_type="text/html; charset=utf-8")


    def _export(self, claims: dict[str, Any]) -> Response:
        """The messages of an export link, streamed (one message's pieces at a time: a large
        export takes no more memory than a small one)."""
        fmt = str(claims["f"])
        now = time.time()
        self.used = {j: e for j, e in self.used.items() if e > now}
        nonce = str(claims.get("j", ""))
        if not nonce or nonce in self.used:
            return _plain(403, "This export link has been used: export again.")
        user = str(claims["u"]).lower()
        if (sum(self.exporting.values()) >= EXPORTS
                or self.exporting.get(user, 0) >= EXPORTS_PER_USER):
            response = _plain(429, "Too many exports are running: try again when one ends.")
            response.headers["Retry-After"] = "10"
            return response
        self.used[nonce] = float(claims["e"])
        self.exporting[user] = self.exporting.get(user, 0) + 1
        pieces = self._counted(self._export_pieces(claims, fmt), user)
        disposition = f"attachment; filename=\"{claims['n']}\""
        return StreamingResponse(pieces, 200, {
            **COMMON, "Cache-Control": "no-store", "Content-Disposition": disposition,
            "Content-Security-Policy": "default-src 'none'; sandbox"},
            media_type="application/mbox" if fmt == "mbox" else "application/zip")

    def _counted(self, pieces: Iterator[bytes], user: str) -> Iterator[bytes]:
        try:
            yield from pieces
        finally:
            self.exporting[user] -= 1
            if self.exporting[user] <= 0:
                del self.exporting[user]

    def _export_pieces(self, claims: dict[str, Any], fmt: str) -> Iterator[bytes]:
        scope = scope_of(self.master, str(claims["u"]), str(claims["v"]))
        sink = _Sink()
        archive = Archive(self.data_dir, self.master, self.keys)
        try:
            zipped = zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) if fmt == "zip" else None
            for store_id, store, number in _chosen(archive, scope, claims):
                if zipped is None:
                    yield from mbox_pieces(store, number)
                    continue
                hit = store.catalog.entry(number)
                when = time.gmtime(hit.date if hit is not None else time.time())
                stamp = (max(1980, when.tm_year), when.tm_mon, when.tm_mday, when.tm_hour,
                         when.tm_min, when.tm_sec)
                info = zipfile.ZipInfo(f"{store_id}-{number}.eml", date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zipped.open(info, "w", force_zip64=True) as entry:
                    for chunk in store.read_chunks(number):
                        entry.write(chunk)
                        if sink.size() >= 1 << 20:
                            yield sink.take()
                yield sink.take()
            if zipped is not None:
                zipped.close()
                yield sink.take()
        finally:
            archive.close()


class _Sink(io.RawIOBase):
    """Where a zip is written as it is streamed: taken away piece by piece (zipfile writes a
    stream it cannot seek with data descriptors)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._size += len(chunk)
        self._pos += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._pos

    def size(self) -> int:
        return self._size

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return data


def _chosen(archive: Archive, scope: Scope, claims: dict[str, Any]
            ) -> Iterator[tuple[int, Any, int]]:
    """(store id, store, number) of every message an export link names that its account may
    still read: its ids in their order, or its search's results."""
    ids = list(claims.get("ids") or [])
    if ids:
        for message_id in ids:
            try:
                rec, store, number = archive.message(str(message_id))
            except (NotFound, InvalidArgument):
                continue
            hit = store.catalog.entry(number)
            if hit is not None and scope.allows(hit.owner, hit.folder):
                yield rec.id, store, number
        return
    query = scoped_query(str(claims.get("q") or ""), scope)
    for rec, store in archive.readable_stores():
        for number in store.catalog.iter_numbers(query):
            yield rec.id, store, number


def routes(data_dir: Path, master: MasterDB, keys: KeyRing,
           state: ApiState | None = None) -> list[Route]:
    console = Console(data_dir, master, keys, state)
    return [Route("/", console.page, methods=["GET", "HEAD"]),
            Route("/console/upload/{token:str}", console.upload, methods=["PUT"]),
            Route("/console/static/{name}", console.page, methods=["GET", "HEAD"]),
            Route("/console/{kind:str}/{token:str}", console.linked, methods=["GET"])]
